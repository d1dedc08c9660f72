// AttemptMap against std::map: random sets, counts and erasures (backward-shift deletion is
// where open addressing goes wrong), then every key checked.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "attempts/db/attempt_map.hpp"

namespace attempts::db {
namespace {

TEST(AttemptMapTest, AnEmptyMapFindsNothing) {
  AttemptMap map;
  EXPECT_EQ(map.find(1), 0u);
  map.erase(1);
  map.decrement(1);
  EXPECT_TRUE(map.empty());
}

TEST(AttemptMapTest, CountsGoUpAndDownAndVanishAtZero) {
  AttemptMap map;
  map.increment(7);
  map.increment(7);
  EXPECT_EQ(map.find(7), 2u);
  map.decrement(7);
  EXPECT_EQ(map.find(7), 1u);
  map.decrement(7);
  EXPECT_EQ(map.find(7), 0u);
  EXPECT_TRUE(map.empty());
}

TEST(AttemptMapTest, RandomOperationsAgreeWithStdMap) {
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    std::mt19937_64 random(seed);
    AttemptMap map;
    std::map<AttemptId, std::uint32_t> model;
    // Few distinct keys in a small range, so that probes collide and runs form and break.
    std::uniform_int_distribution<AttemptId> key(1, 64);
    for (int op = 0; op < 2000; ++op) {
      const AttemptId id = key(random) * (seed % 3 == 0 ? 1024 : 1);
      switch (random() % 4) {
        case 0:
          map.set(id, 5);
          model[id] = 5;
          break;
        case 1:
          map.increment(id);
          ++model[id];
          break;
        case 2:
          map.decrement(id);
          if (auto it = model.find(id); it != model.end() && --it->second == 0) model.erase(it);
          break;
        default:
          map.erase(id);
          model.erase(id);
          break;
      }
      ASSERT_EQ(map.size(), model.size()) << "seed " << seed << " op " << op;
    }
    for (AttemptId k = 1; k <= 64; ++k) {
      const AttemptId id = k * (seed % 3 == 0 ? 1024 : 1);
      const auto it = model.find(id);
      ASSERT_EQ(map.find(id), it == model.end() ? 0u : it->second) << "seed " << seed;
    }
    map.clear();
    EXPECT_TRUE(map.empty());
    EXPECT_EQ(map.find(1), 0u);
  }
}

}  // namespace
}  // namespace attempts::db
