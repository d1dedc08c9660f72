// Who reads what (issue 30): every staff route against every kind of caller, through the real
// server and PostgreSQL. The table below is the one the issue asks for; each row is one request.
//
//                               student  staff of   staff of   no token  expired
//                                        the exam   another              token
//   GET /exams/{id}/attempts    403      200        404        401       401
//   GET /attempts/{id}          404 (*)  200        404        401       401
//   GET /attempts/{id}/history  404 (*)  200        404        401       401
//   (*) a student who does not own it; its owner reads it (200) as before.
// And staff never write: PATCH /attempts/{id}, POST /attempts/{id}/submit and
// POST /exams/{id}/attempts with a staff token are 403.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/http_client.hpp"
#include "support/postgres.hpp"
#include "support/server_process.hpp"
#include "support/staff_exports.hpp"
#include "support/tokens.hpp"

namespace attempts::integration {
namespace {

using json = nlohmann::json;

constexpr std::int64_t kOwner = 910001;  // the first attempt's student

class StaffAccessTest : public testing::Test {
 protected:
  void SetUp() override {
    exam_ = make_exam(db_, 3, kOwner, "teacher-of-a");
    other_exam_ = make_exam(db_, 1, 920001, "teacher-of-b");
    server_.emplace(ServerSettings::with_flags(staff_server_flags(jwks_)));
  }

  int status_of(const std::string& method, const std::string& target, const std::string& token,
                const std::string& body = "") {
    HttpRequest request{method, target, {}, body};
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    if (!token.empty()) request = with_token(request, token);
    return HttpClient(server_->port()).request(request).status;
  }

  Database db_;
  TestJwks jwks_;
  TestExam exam_;
  TestExam other_exam_;
  std::optional<ServerProcess> server_;
};

TEST_F(StaffAccessTest, EveryStaffRouteAgainstEveryCaller) {
  const std::int64_t now = unix_now();
  const json expired = {{"iat", now - 7200}, {"exp", now - 3600}};
  const struct {
    const char* caller;
    std::string token;
  } callers[] = {
      {"student", token_for(kOwner + 1)},  // a student, not this attempt's owner
      {"staff of the exam", staff_token("teacher-of-a")},
      {"staff of another exam", staff_token("teacher-of-b")},
      {"no token", ""},
      {"expired token", staff_token("teacher-of-a", expired)},
  };
  const std::string attempt = "/attempts/" + std::to_string(exam_.first_attempt);
  const struct {
    std::string target;
    int expected[5];  // in the order of `callers`
  } routes[] = {
      {"/exams/" + std::to_string(exam_.id) + "/attempts", {403, 200, 404, 401, 401}},
      {attempt, {404, 200, 404, 401, 401}},
      {attempt + "/history", {404, 200, 404, 401, 401}},
  };
  for (const auto& route : routes) {
    for (std::size_t i = 0; i < std::size(callers); ++i) {
      EXPECT_EQ(status_of("GET", route.target, callers[i].token), route.expected[i])
          << "GET " << route.target << " by " << callers[i].caller;
    }
  }
  // The owner still reads their own, and the history says which attempt it is.
  EXPECT_EQ(status_of("GET", attempt, token_for(kOwner)), 200);
  const auto history =
      HttpClient(server_->port())
          .request(with_token(get_request(attempt + "/history"), staff_token("teacher-of-a")));
  EXPECT_EQ(json::parse(history.body)["id"], exam_.first_attempt);
  // A missing exam looks like another's.
  EXPECT_EQ(status_of("GET", "/exams/999999999/attempts", staff_token("teacher-of-a")), 404);
  EXPECT_GE(metric(server_->port(), "attempts_staff_reads_total"), 4);
}

TEST_F(StaffAccessTest, StaffNeverWriteAnswers) {
  const std::string token = staff_token("teacher-of-a");
  const std::string attempt = "/attempts/" + std::to_string(exam_.first_attempt);
  EXPECT_EQ(status_of("PATCH", attempt, token, R"({"answers":{"1":[1]}})"), 403);
  EXPECT_EQ(status_of("POST", attempt + "/submit", token), 403);
  EXPECT_EQ(status_of("POST", "/exams/" + std::to_string(exam_.id) + "/attempts", token), 403);
  // Nothing changed, and the owner still writes.
  EXPECT_EQ(db_.answers_text(exam_.first_attempt), R"({"1": [100001], "2": [1]})");
  EXPECT_EQ(status_of("PATCH", attempt, token_for(kOwner), R"({"answers":{"1":[1]}})"), 204);
}

TEST_F(StaffAccessTest, ATeacherAddedToAnExamReadsItFromTheNextRequest) {
  const std::string token = staff_token("teacher-of-b");
  const std::string target = "/exams/" + std::to_string(exam_.id) + "/attempts";
  EXPECT_EQ(status_of("GET", target, token), 404);
  add_staff(db_, exam_.id, "teacher-of-b");
  EXPECT_EQ(status_of("GET", target, token), 200);
}

TEST_F(StaffAccessTest, WithoutAStaffRuleEveryTokenIsAStudentsAndTeachersAreRefused) {
  server_.reset();
  ServerProcess plain(ServerSettings::with_flags({"--jwks", jwks_.path()}));
  // A teacher's sub is no student id: the token is refused as a student's would be.
  HttpRequest request = with_token(get_request("/exams/" + std::to_string(exam_.id) + "/attempts"),
                                   staff_token("t-1"));
  EXPECT_EQ(HttpClient(plain.port()).request(request).status, 401);
  request = with_token(get_request("/exams/" + std::to_string(exam_.id) + "/attempts"),
                       token_for(kOwner));
  EXPECT_EQ(HttpClient(plain.port()).request(request).status, 403);
}

}  // namespace
}  // namespace attempts::integration
