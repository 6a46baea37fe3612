// SPDX-License-Identifier: BSD-3-Clause
// How acctlock reads --since and shows times.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "cli/time_text.h"

namespace acctlock::cli {
namespace {

using namespace std::chrono_literals;

// Local time is whatever TZ says; pin it so the expectations are exact.
class TimeTextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
  }
  void TearDown() override {
    unsetenv("TZ");
    tzset();
  }
  // 2024-05-01T12:00:00Z, 14:00 in Berlin (CEST).
  const TimePoint now{Seconds(1714564800)};
};

TEST_F(TimeTextTest, RelativeDurationsCountBackFromNow) {
  EXPECT_EQ(parse_time("2h", now), now - 2h);
  EXPECT_EQ(parse_time("2h ago", now), now - 2h);
  EXPECT_EQ(parse_time("1d", now), now - 24h);
  EXPECT_EQ(parse_time("1h30m ago", now), now - 90min);
}

TEST_F(TimeTextTest, DatesAreLocalUnlessMarkedUtc) {
  EXPECT_EQ(parse_time("2024-05-01", now), TimePoint(Seconds(1714514400)));  // 00:00 CEST
  EXPECT_EQ(parse_time("2024-05-01T08:30", now), TimePoint(Seconds(1714545000)));
  EXPECT_EQ(parse_time("2024-05-01 08:30:15", now), TimePoint(Seconds(1714545015)));
  EXPECT_EQ(parse_time("2024-05-01T08:30:15Z", now), TimePoint(Seconds(1714552215)));
}

TEST_F(TimeTextTest, TodayAndYesterdayAreLocalMidnights) {
  EXPECT_EQ(parse_time("today", now), TimePoint(Seconds(1714514400)));
  EXPECT_EQ(parse_time("yesterday", now), TimePoint(Seconds(1714514400 - 86400)));
}

TEST_F(TimeTextTest, NonsenseIsRefused) {
  for (const char* text : {"", "soon", "90", "never", "0s", "2024-13-01", "2024-05-01 25:00",
                           "2024-05-01x", "2h later"}) {
    EXPECT_FALSE(parse_time(text, now).has_value()) << text;
  }
}

TEST_F(TimeTextTest, DaemonTimesAreShownInLocalTime) {
  const auto parsed = parse_iso8601_utc("2024-05-01T12:00:00Z");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, now);
  EXPECT_EQ(format_local(now), "2024-05-01 14:00:00");
  EXPECT_EQ(format_local(now, true), "2024-05-01 14:00:00 CEST");
  EXPECT_FALSE(parse_iso8601_utc("2024-05-01 12:00:00").has_value());
}

}  // namespace
}  // namespace acctlock::cli
