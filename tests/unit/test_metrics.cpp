// Counters, histograms and the Prometheus text exposition of /metrics.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

#include "attempts/auth/token_cache.hpp"
#include "attempts/metrics/exposition.hpp"
#include "attempts/metrics/metrics.hpp"
#include "auth_test_support.hpp"

namespace attempts::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HistogramTest, BucketsAreCumulativeWithInfLast) {
  Histogram histogram{1, 10, 100};
  for (const double value : {0.5, 1.0, 5.0, 50.0, 500.0}) histogram.observe(value);
  const auto data = histogram.snapshot();
  EXPECT_EQ(data.cumulative_counts, (std::vector<std::uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(data.count, 5u);
  EXPECT_DOUBLE_EQ(data.sum, 556.5);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram histogram{1, 2};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) histogram.observe(1.5);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(histogram.snapshot().count, 40000u);
  EXPECT_EQ(histogram.snapshot().cumulative_counts[1], 40000u);
}

TEST(TextWriterTest, WritesHelpTypeAndSamples) {
  TextWriter out;
  out.family("x_total", "counter", "Things.");
  out.sample("x_total", "", std::uint64_t{3});
  out.sample("x_total", R"(kind="a")", std::uint64_t{4});
  EXPECT_EQ(out.text(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\nx_total{kind=\"a\"} 4\n");
}

TEST(TextWriterTest, HistogramHasBucketsSumAndCount) {
  Histogram histogram{0.00025, 1};
  histogram.observe(0.0001);
  TextWriter out;
  out.histogram("h", R"(r="x")", histogram.snapshot());
  EXPECT_EQ(out.text(),
            "h_bucket{r=\"x\",le=\"0.00025\"} 1\nh_bucket{r=\"x\",le=\"1\"} 1\n"
            "h_bucket{r=\"x\",le=\"+Inf\"} 1\nh_sum{r=\"x\"} 1e-04\nh_count{r=\"x\"} 1\n");
}

TEST(EscapeLabelTest, EscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(ExpositionTest, CountsRequestsByRouteAndStatusAndPoolState) {
  http::HttpMetrics http;
  http.record(http::Route::save_answers, 204, std::chrono::microseconds(300));
  http.record(http::Route::save_answers, 204, std::chrono::microseconds(400));
  http.record(http::Route::save_answers, 503, std::chrono::milliseconds(2));
  http.record(http::Route::not_found, 404, std::chrono::microseconds(10));
  http.record(http::Route::health, 299, std::chrono::microseconds(10));  // counted as "other"
  db::PoolMetrics pool;
  pool.batch_rows.observe(3);
  pool.batches_committed.add();
  pool.rows_committed.add(3);
  const std::string text =
      render_exposition(http, AuthCounters{}, pool, {{true, 0, 0, true}, {false, 7, 2}});

  EXPECT_THAT(
      text,
      HasSubstr("attempts_http_requests_total{route=\"PATCH /attempts/{id}\",code=\"204\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr("attempts_http_requests_total{route=\"PATCH /attempts/{id}\",code=\"503\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_http_requests_total{route=\"unknown\",code=\"404\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("attempts_http_requests_total{route=\"/healthz\",code=\"other\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_http_request_duration_seconds_count{route=\"PATCH "
                              "/attempts/{id}\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_batch_rows_count 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_rows_committed_total 3\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_connection_up{connection=\"1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_queue_depth{connection=\"1\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_in_flight{connection=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_connection_refusing{connection=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_db_connection_refusing{connection=\"1\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("attempts_auth_")));  // authentication off
  EXPECT_THAT(text, HasSubstr("attempts_db_connections{state=\"up\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"200\"")));  // series appear with their first request
}

TEST(ExpositionTest, EveryLineIsACommentOrANameLabelsValueSample) {
  http::HttpMetrics http;
  http.record(http::Route::readiness, 503, std::chrono::milliseconds(1));
  const std::string text =
      render_exposition(http, AuthCounters{}, db::PoolMetrics{}, {{true, 0, 0}});
  std::istringstream lines(text);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string value = line.substr(space + 1);
    EXPECT_NO_THROW((void)std::stod(value)) << line;
    EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(line[0]))) << line;
    ++samples;
  }
  EXPECT_GT(samples, 20);
}

TEST(ExpositionTest, CountsRejectionsByReasonAndTheTokenCaches) {
  const auth::Authenticator authenticator(std::make_shared<const auth::TokenVerifier>(
      auth::test::test_key_set(), auth::VerifierOptions{}));
  auth::TokenCache cache({.capacity = 64, .readers = 2});
  auto& first = cache.reader(0);
  auto& second = cache.reader(1);
  const std::string token = auth::test::make_token("test-hs256");
  (void)authenticator.authenticate("", first, auth::test::kNow);                         // missing
  (void)authenticator.authenticate("Bearer " + token, first, auth::test::kNow);          // miss
  (void)authenticator.authenticate("Bearer " + token, second, auth::test::kNow);         // hit
  (void)authenticator.authenticate("Bearer " + token, second, auth::test::kNow + 7200);  // expired
  const std::string text = render_exposition(
      http::HttpMetrics{}, AuthCounters{&authenticator, &cache}, db::PoolMetrics{}, {});
  EXPECT_THAT(text, HasSubstr("attempts_auth_rejections_total{reason=\"missing\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_rejections_total{reason=\"expired\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_rejections_total{reason=\"bad_signature\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_token_cache_hits_total 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_token_cache_misses_total 2\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_token_cache_entries 1\n"));
  EXPECT_THAT(text, HasSubstr("attempts_auth_token_cache_bytes 3584\n"));
}

}  // namespace
}  // namespace attempts::metrics
