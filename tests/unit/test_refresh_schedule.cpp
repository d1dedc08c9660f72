// RefreshSchedule: when the remote key source fetches. Its rules (refresh_schedule.hpp) depend
// on how asks from tokens and operators interleave with fetches, so besides a few named cases,
// generated timelines (asks at random moments, fetches of random length that succeed or fail)
// are checked against the rules as the header states them. A failing case prints its seed.

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <vector>

#include "attempts/auth/remote_keys.hpp"
#include "auth/refresh_schedule.hpp"

namespace attempts::auth {
namespace {

using Clock = RefreshSchedule::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1000);

TEST(RefreshScheduleTest, TheFirstFetchIsAtOnceAndTheNextAfterTheInterval) {
  RefreshSchedule schedule(seconds(10), kStart);
  EXPECT_LE(schedule.next_fetch(), kStart);
  schedule.fetch_started(kStart);
  schedule.fetch_succeeded(kStart + seconds(1), seconds(300));
  EXPECT_EQ(schedule.next_fetch(), kStart + seconds(301));
}

TEST(RefreshScheduleTest, FailuresBackOffUpToAMinuteOrTheInterval) {
  RefreshSchedule schedule(seconds(10), kStart);
  auto now = kStart;
  std::vector<long> delays;
  for (int i = 0; i < 8; ++i) {
    schedule.fetch_started(now);
    delays.push_back(schedule.fetch_failed(now, seconds(300)).count());
    EXPECT_EQ(schedule.next_fetch(), now + seconds(delays.back()));
    now = schedule.next_fetch();
  }
  EXPECT_EQ(delays, (std::vector<long>{1, 2, 4, 8, 16, 32, 60, 60}));
  // A success starts the backoff over; an interval shorter than the delay bounds it.
  schedule.fetch_started(now);
  schedule.fetch_succeeded(now, seconds(300));
  schedule.fetch_started(now);
  EXPECT_EQ(schedule.fetch_failed(now, seconds(300)), seconds(1));
  EXPECT_EQ(schedule.fetch_failed(now, seconds(1)), seconds(1));
}

TEST(RefreshScheduleTest, ATokenAskWaitsForMinRefreshAndSaysWhenToRetry) {
  RefreshSchedule schedule(seconds(10), kStart);
  schedule.fetch_started(kStart);
  schedule.fetch_succeeded(kStart, seconds(300));
  // 4 s after the last fetch started: the next may start 6 s later, and is done a second after.
  const auto first = schedule.ask_for_token(kStart + seconds(4));
  EXPECT_TRUE(first.first);
  EXPECT_EQ(first.retry_after, seconds(7));
  EXPECT_EQ(schedule.next_fetch(), kStart + seconds(10));
  // The rest of the wave is answered by the same fetch.
  const auto second = schedule.ask_for_token(kStart + milliseconds(4500));
  EXPECT_FALSE(second.first);
  EXPECT_EQ(second.retry_after, seconds(7));  // 5.5 s, rounded up, and the second
  // Long after the last fetch: at once.
  RefreshSchedule idle(seconds(10), kStart);
  idle.fetch_started(kStart);
  idle.fetch_succeeded(kStart, seconds(300));
  EXPECT_EQ(idle.ask_for_token(kStart + seconds(60)).retry_after, seconds(1));
  EXPECT_EQ(idle.next_fetch(), kStart + seconds(10));
}

TEST(RefreshScheduleTest, AnAskDuringAFetchIsAnsweredByTheNextOne) {
  RefreshSchedule schedule(seconds(10), kStart);
  schedule.fetch_started(kStart);
  // The fetch under way may have read the document before the new key was published.
  EXPECT_TRUE(schedule.ask_for_token(kStart + milliseconds(10)).first);
  schedule.fetch_succeeded(kStart + milliseconds(20), seconds(300));
  EXPECT_EQ(schedule.next_fetch(), kStart + seconds(10));
}

TEST(RefreshScheduleTest, AnOperatorAskIsAnsweredAtOnceWhateverMinRefresh) {
  RefreshSchedule schedule(seconds(60), kStart);
  schedule.fetch_started(kStart);
  schedule.fetch_succeeded(kStart, seconds(86400));
  EXPECT_TRUE(schedule.ask_for_operator());
  EXPECT_FALSE(schedule.ask_for_operator());
  EXPECT_LE(schedule.next_fetch(), kStart + seconds(1));
  schedule.fetch_started(kStart + seconds(1));
  EXPECT_EQ(schedule.next_fetch(), kStart + seconds(86400));
  EXPECT_TRUE(schedule.ask_for_operator());
}

// ---- generated timelines ------------------------------------------------------------------

struct Ask {
  Clock::time_point at;
  bool token = true;                               // else an operator's
  seconds retry_after{0};                          // tokens only
  std::optional<Clock::time_point> running_until;  // the end of the fetch under way, if any
};

struct Fetch {
  Clock::time_point start;
  Clock::time_point end;
};

// One timeline: the loop of RemoteKeys::State::run, stepped every 50 ms, with asks at random
// steps. Returns the asks and fetches for the checks.
struct Timeline {
  std::vector<Ask> asks;
  std::vector<Fetch> fetches;
};

constexpr milliseconds kStep{50};

Timeline simulate(std::uint64_t seed, seconds min_refresh, seconds interval, bool operators,
                  bool failures) {
  std::mt19937_64 random(seed);
  Timeline timeline;
  RefreshSchedule schedule(min_refresh, kStart);
  bool running = false;  // the last of timeline.fetches is under way
  bool running_fails = false;
  const auto end = kStart + seconds(120);
  for (auto now = kStart; now < end; now += kStep) {
    // The loop: a fetch that ends now is done.
    if (running && timeline.fetches.back().end <= now) {
      running = false;
      if (running_fails) {
        schedule.fetch_failed(now, interval);
      } else {
        schedule.fetch_succeeded(now, interval);
      }
    }
    // Request threads and the operator, between the loop's steps.
    if (random() % 8 == 0) {
      Ask ask;
      ask.at = now;
      ask.token = !operators || random() % 4 != 0;
      if (running) ask.running_until = timeline.fetches.back().end;
      if (ask.token) {
        ask.retry_after = schedule.ask_for_token(now).retry_after;
      } else {
        schedule.ask_for_operator();
      }
      timeline.asks.push_back(ask);
    }
    // The loop again: a fetch that is due now starts.
    if (!running && schedule.next_fetch() <= now) {
      schedule.fetch_started(now);
      // Most fetches take tens of milliseconds; some hang until the fetch timeout.
      const auto length = random() % 10 == 0 ? milliseconds(10000) : milliseconds(random() % 400);
      timeline.fetches.push_back({now, now + length});
      running = true;
      running_fails = failures && random() % 3 == 0;
    }
  }
  return timeline;
}

// The first fetch that started strictly after the ask was made (an ask made at the step of a
// start is answered by it: asks come before the loop's start in a step).
std::optional<Fetch> answering(const Timeline& timeline, const Ask& ask) {
  for (const auto& fetch : timeline.fetches) {
    if (fetch.start >= ask.at) return fetch;
  }
  return std::nullopt;
}

TEST(RefreshScheduleModelTest, EveryAskIsAnsweredByAFetchStartedAfterItAsSoonAsTheRulesAllow) {
  constexpr int kCases = 1500;
  for (int i = 0; i < kCases; ++i) {
    const std::uint64_t seed = 0x5eed0000 + i;
    const seconds min_refresh(1 + static_cast<int>(seed % 10));
    const seconds interval = seed % 3 == 0 ? seconds(7) : seconds(86400);
    const auto timeline = simulate(seed, min_refresh, interval, seed % 2 == 0, seed % 5 == 0);
    for (const auto& ask : timeline.asks) {
      // Asks in the last seconds may still be waiting when the timeline ends.
      if (ask.at > kStart + seconds(95)) continue;
      const auto fetch = answering(timeline, ask);
      ASSERT_TRUE(fetch) << "seed " << seed << ": an ask at +"
                         << (ask.at - kStart) / kStep * kStep.count() << " ms was never answered";
      const auto after_running = ask.running_until.value_or(ask.at);
      if (ask.token) {
        // Not before min_refresh since the fetch before it; no later than Retry-After said
        // (less the allowance for the fetch itself), unless the fetch under way ran longer.
        const auto promised = ask.at + ask.retry_after - seconds(1);
        EXPECT_LE(fetch->start, std::max(promised, after_running) + kStep)
            << "seed " << seed << ": Retry-After " << ask.retry_after.count() << " s too short";
        EXPECT_GE(ask.retry_after, seconds(1));
        EXPECT_LE(ask.retry_after, min_refresh + seconds(1));
      } else {
        // An operator waits for nothing but the fetch under way.
        EXPECT_LE(fetch->start, after_running + kStep) << "seed " << seed;
      }
    }
  }
}

TEST(RefreshScheduleModelTest, TokensAloneNeverStartFetchesCloserThanMinRefresh) {
  constexpr int kCases = 1500;
  for (int i = 0; i < kCases; ++i) {
    const std::uint64_t seed = 0xf100d000 + i;
    const seconds min_refresh(1 + static_cast<int>(seed % 10));
    // No refresh falls due within the timeline, no operator asks: every fetch after the first
    // was asked for by a token (failures retry on their own schedule, so none here).
    const auto timeline = simulate(seed, min_refresh, seconds(86400), false, false);
    for (std::size_t f = 1; f < timeline.fetches.size(); ++f) {
      EXPECT_GE(timeline.fetches[f].start - timeline.fetches[f - 1].start, min_refresh)
          << "seed " << seed << ": fetches " << f - 1 << " and " << f;
    }
  }
}

}  // namespace
}  // namespace attempts::auth
