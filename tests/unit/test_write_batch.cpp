// Unit tests for coalescing a run of queued writes into one statement.

#include <gtest/gtest.h>

#include <cstddef>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "attempts/db/write_batch.hpp"

namespace attempts::db {
namespace {

CoalescedWrites coalesce(const std::vector<AttemptId>& request_ids) {
  return coalesce_writes(request_ids);
}

TEST(CoalesceWritesTest, EmptyInputGivesAnEmptyPlan) {
  const CoalescedWrites plan = coalesce({});
  EXPECT_TRUE(plan.ids.empty());
  EXPECT_TRUE(plan.winner.empty());
  EXPECT_TRUE(plan.id_of_request.empty());
}

TEST(CoalesceWritesTest, OneRequestIsItsOwnWinner) {
  const CoalescedWrites plan = coalesce({42});
  EXPECT_EQ(plan.ids, (std::vector<AttemptId>{42}));
  EXPECT_EQ(plan.winner, (std::vector<std::size_t>{0}));
  EXPECT_EQ(plan.id_of_request, (std::vector<std::size_t>{0}));
}

TEST(CoalesceWritesTest, DistinctIdsComeOutSorted) {
  const CoalescedWrites plan = coalesce({30, 10, 20});
  EXPECT_EQ(plan.ids, (std::vector<AttemptId>{10, 20, 30}));
  EXPECT_EQ(plan.winner, (std::vector<std::size_t>{1, 2, 0}));
  EXPECT_EQ(plan.id_of_request, (std::vector<std::size_t>{2, 0, 1}));
}

TEST(CoalesceWritesTest, RepeatedIdKeepsTheLastRequest) {
  const CoalescedWrites plan = coalesce({7, 7, 7});
  EXPECT_EQ(plan.ids, (std::vector<AttemptId>{7}));
  EXPECT_EQ(plan.winner, (std::vector<std::size_t>{2}));
  EXPECT_EQ(plan.id_of_request, (std::vector<std::size_t>{0, 0, 0}));
}

TEST(CoalesceWritesTest, InterleavedRepeatsKeepTheLastRequestOfEachId) {
  //                                  0  1  2  3  4  5
  const CoalescedWrites plan = coalesce({5, 3, 5, 9, 3, 5});
  EXPECT_EQ(plan.ids, (std::vector<AttemptId>{3, 5, 9}));
  EXPECT_EQ(plan.winner, (std::vector<std::size_t>{4, 5, 3}));
  EXPECT_EQ(plan.id_of_request, (std::vector<std::size_t>{1, 0, 1, 2, 0, 1}));
}

TEST(CoalesceWritesTest, ExtremeIdsAreOrderedNumerically) {
  const AttemptId max = std::numeric_limits<AttemptId>::max();
  const CoalescedWrites plan = coalesce({max, 1, max - 1});
  EXPECT_EQ(plan.ids, (std::vector<AttemptId>{1, max - 1, max}));
}

TEST(CoalesceWritesTest, IdOfRequestMapsEveryRequestToItsId) {
  const std::vector<AttemptId> requests = {4, 8, 4, 2, 8, 8, 1};
  const CoalescedWrites plan = coalesce(requests);
  ASSERT_EQ(plan.id_of_request.size(), requests.size());
  for (std::size_t request = 0; request < requests.size(); ++request) {
    ASSERT_LT(plan.id_of_request[request], plan.ids.size());
    EXPECT_EQ(plan.ids[plan.id_of_request[request]], requests[request]) << "request " << request;
  }
}

// The obvious model: walk the requests in order; the map keeps ids sorted and the last write.
struct ReferencePlan {
  std::map<AttemptId, std::size_t> last_request_of_id;
};

ReferencePlan reference(const std::vector<AttemptId>& requests) {
  ReferencePlan model;
  for (std::size_t request = 0; request < requests.size(); ++request) {
    model.last_request_of_id[requests[request]] = request;
  }
  return model;
}

void expect_matches_reference(const std::vector<AttemptId>& requests) {
  const CoalescedWrites plan = coalesce(requests);
  const ReferencePlan model = reference(requests);

  ASSERT_EQ(plan.ids.size(), model.last_request_of_id.size());
  ASSERT_EQ(plan.winner.size(), plan.ids.size());
  ASSERT_EQ(plan.id_of_request.size(), requests.size());
  std::size_t index = 0;
  for (const auto& [id, last_request] : model.last_request_of_id) {
    EXPECT_EQ(plan.ids[index], id) << "position " << index;
    EXPECT_EQ(plan.winner[index], last_request) << "id " << id;
    ++index;
  }
  for (std::size_t request = 0; request < requests.size(); ++request) {
    ASSERT_LT(plan.id_of_request[request], plan.ids.size());
    EXPECT_EQ(plan.ids[plan.id_of_request[request]], requests[request]) << "request " << request;
  }
}

TEST(CoalesceWritesTest, LargeRandomInputMatchesTheReferenceModel) {
  std::mt19937_64 random(12345);
  for (const AttemptId id_range :
       {AttemptId{1}, AttemptId{10}, AttemptId{1000}, AttemptId{1} << 40}) {
    std::uniform_int_distribution<AttemptId> pick(1, id_range);
    for (const std::size_t size :
         {std::size_t{1}, std::size_t{17}, std::size_t{256}, std::size_t{10000}}) {
      std::vector<AttemptId> requests(size);
      for (auto& id : requests) id = pick(random);
      SCOPED_TRACE(testing::Message() << "ids 1.." << id_range << ", " << size << " requests");
      expect_matches_reference(requests);
    }
  }
}

TEST(CoalesceWritesTest, AlreadySortedAndReverseSortedInputsMatchTheReferenceModel) {
  std::vector<AttemptId> ascending;
  for (AttemptId id = 1; id <= 500; ++id) ascending.push_back(id / 3 + 1);
  expect_matches_reference(ascending);
  expect_matches_reference(std::vector<AttemptId>(ascending.rbegin(), ascending.rend()));
}

}  // namespace
}  // namespace attempts::db
