// SPDX-License-Identifier: BSD-3-Clause
// Spray detection (daemon/policy/spray_detector.h): thresholds, the window
// and its boundary, once per window, and bounded memory under a flood.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "daemon/policy/spray_detector.h"

namespace acctlock {
namespace {

const TimePoint kStart{Seconds(1714564800)};  // a multiple of 60: slices start on it

SprayRules rules(std::uint32_t users, std::uint32_t sources, std::int64_t window_seconds = 600) {
  SprayRules r;
  r.users = users;
  r.sources = sources;
  r.window = Seconds(window_seconds);
  return r;
}

std::string user(int i) { return "user" + std::to_string(i); }
std::string source(int i) { return "198.51.100." + std::to_string(i); }

TEST(SprayDetector, AlarmsWhenBothThresholdsAreReachedNotBefore) {
  SprayDetector detector(rules(5, 3), 42);
  // Five users from two sources: users reached, sources not.
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(detector.record_failure(user(i), source(i % 2), kStart + Seconds(i)));
  }
  // Many failures of one user from many sources: sources reached, but the
  // distinct users are still the five above, then the sixth makes both.
  const auto figures = detector.record_failure(user(0), source(2), kStart + Seconds(10));
  ASSERT_TRUE(figures);
  EXPECT_EQ(figures->users, 5u);
  EXPECT_EQ(figures->sources, 3u);
  EXPECT_EQ(figures->failures, 6u);
  EXPECT_EQ(figures->window, Seconds(600));
}

TEST(SprayDetector, OneUserFromManySourcesOrManyUsersFromOneSourceIsNotASpray) {
  SprayDetector detector(rules(5, 3), 42);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(detector.record_failure("alice", source(i), kStart + Seconds(i)));
  }
  SprayDetector other(rules(5, 3), 42);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(other.record_failure(user(i), "203.0.113.5", kStart + Seconds(i)));
  }
}

TEST(SprayDetector, FailuresOlderThanTheWindowNoLongerCount) {
  // Window 600 s in ten 60 s slices: a failure counts while its slice is
  // one of the last ten, the current one included.
  SprayDetector detector(rules(3, 3), 7);
  EXPECT_FALSE(detector.record_failure(user(0), source(0), kStart));
  EXPECT_FALSE(detector.record_failure(user(1), source(1), kStart + Seconds(60)));
  // kStart + 600 is ten slices later: the first failure's slice is gone.
  EXPECT_FALSE(detector.record_failure(user(2), source(2), kStart + Seconds(600)));
  // Within the window of the second and third, a fourth makes three.
  EXPECT_TRUE(detector.record_failure(user(3), source(3), kStart + Seconds(659)));
}

TEST(SprayDetector, AlarmsAtMostOncePerWindow) {
  SprayDetector detector(rules(2, 2), 7);
  EXPECT_FALSE(detector.record_failure(user(0), source(0), kStart));
  EXPECT_TRUE(detector.record_failure(user(1), source(1), kStart + Seconds(1)));
  // The spray goes on: no second alarm until spray_window has passed.
  for (int i = 2; i < 50; ++i) {
    EXPECT_FALSE(detector.record_failure(user(i), source(i), kStart + Seconds(1 + i * 10)))
        << i;
  }
  EXPECT_FALSE(detector.record_failure(user(60), source(60), kStart + Seconds(600)));
  EXPECT_TRUE(detector.record_failure(user(61), source(61), kStart + Seconds(601)));
}

TEST(SprayDetector, UsersZeroTurnsItOff) {
  SprayDetector detector(rules(0, 1), 7);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(detector.record_failure(user(i), source(i), kStart + Seconds(i)));
  }
}

TEST(SprayDetector, FailuresWithoutASourceCountUsersOnly) {
  SprayDetector detector(rules(2, 1), 7);
  EXPECT_FALSE(detector.record_failure(user(0), "", kStart));
  EXPECT_FALSE(detector.record_failure(user(1), "", kStart)) << "no source at all";
  EXPECT_TRUE(detector.record_failure(user(2), "local", kStart));
}

TEST(SprayDetector, AFloodOfDistinctNamesKeepsItsMemoryBounded) {
  // 30 distinct users and sources a second for 700 s (21000 failures):
  // the first alarm comes at the thresholds; the next one, a window later,
  // counts what the slices kept, each at most the thresholds (30 users, 10
  // sources): nine full slices and the one just begun.
  SprayDetector detector(rules(30, 10), 7);
  std::vector<std::pair<int, SprayFigures>> alarms;
  for (int i = 0; i < 21000; ++i) {
    if (auto figures = detector.record_failure(user(i), "host" + std::to_string(i),
                                               kStart + Seconds(i / 30))) {
      alarms.emplace_back(i, *figures);
    }
  }
  ASSERT_EQ(alarms.size(), 2u);
  EXPECT_EQ(alarms[0].first, 29);
  EXPECT_EQ(alarms[0].second.users, 30u);
  EXPECT_EQ(alarms[0].second.sources, 10u) << "each slice keeps at most spray_sources";
  EXPECT_EQ(alarms[1].first, 600 * 30);
  EXPECT_EQ(alarms[1].second.users, 9u * 30 + 1);
  EXPECT_EQ(alarms[1].second.sources, 9u * 10 + 1);
  EXPECT_EQ(alarms[1].second.failures, 9u * 60 * 30 + 1);
}

}  // namespace
}  // namespace acctlock
