// SPDX-License-Identifier: BSD-3-Clause
// The memory of answered event ids (daemon/events/answered_events.h): a
// resend gets its first answer, nobody else's; the count and age bounds; and
// the heap it holds, which must stay small and follow the count back down
// after a spray (issue 10).
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "daemon/events/answered_events.h"

namespace acctlock {
namespace {

const TimePoint kStart{Seconds(1714564800)};

protocol::Request failure_of(const std::string& user) {
  protocol::Request request;
  request.type = protocol::MessageType::failure;
  request.user = user;
  return request;
}

protocol::Answer answer_with(std::uint32_t failures, const std::string& reason = "") {
  protocol::Answer answer;
  answer.verdict = reason.empty() ? protocol::Verdict::allowed : protocol::Verdict::locked;
  answer.lock = reason.empty() ? LockKind::none : LockKind::source;
  answer.failures = failures;
  answer.level = failures / 3;
  answer.locked_until = reason.empty() ? 0 : 1714568400 + failures;
  answer.reason = reason;
  return answer;
}

TEST(AnsweredEvents, AResendGetsItsFirstAnswerAndNobodyElseDoes) {
  AnsweredEvents answered(7);
  const auto alice = failure_of("alice");
  const auto first = answer_with(2, "198.51.100.7");
  answered.remember(11, 1000, alice, first, kStart);
  // The same id again keeps the first answer.
  answered.remember(11, 1000, alice, answer_with(5), kStart + Seconds(1));
  ASSERT_EQ(answered.find(11, 1000, alice), first);
  EXPECT_EQ(answered.size(), 1u);
  // Another uid, another user or another type with the same id: not a resend.
  EXPECT_FALSE(answered.find(11, 1001, alice));
  EXPECT_FALSE(answered.find(11, 1000, failure_of("alicf")));
  auto success = alice;
  success.type = protocol::MessageType::success;
  EXPECT_FALSE(answered.find(11, 1000, success));
  EXPECT_FALSE(answered.find(12, 1000, alice));
}

TEST(AnsweredEvents, KeepsTheNewestUpToTheCapAndForgetsPastRetention) {
  AnsweredEvents answered(7);
  const std::uint64_t total = kMaxAnsweredEvents + 500;
  for (std::uint64_t i = 1; i <= total; ++i) {
    answered.remember(i, 0, failure_of("s" + std::to_string(i)), answer_with(1), kStart);
  }
  EXPECT_EQ(answered.size(), kMaxAnsweredEvents);
  EXPECT_FALSE(answered.find(500, 0, failure_of("s500")));
  EXPECT_TRUE(answered.find(501, 0, failure_of("s501")));
  EXPECT_TRUE(answered.find(total, 0, failure_of("s" + std::to_string(total))));
  // One event past the retention leaves only itself.
  const TimePoint later = kStart + kAnsweredEventRetention + Seconds(1);
  answered.remember(total + 1, 0, failure_of("late"), answer_with(1), later);
  EXPECT_EQ(answered.size(), 1u);
  EXPECT_FALSE(answered.find(total, 0, failure_of("s" + std::to_string(total))));
  EXPECT_TRUE(answered.find(total + 1, 0, failure_of("late")));
}

// The index against a plain map, with ids a hostile peer might pick (close
// together, sharing low bits) and the ring wrapping, growing and shrinking.
TEST(AnsweredEvents, AgreesWithAPlainMapThroughChurn) {
  AnsweredEvents answered(99);
  std::map<std::uint64_t, std::tuple<TimePoint, std::string, std::uint32_t>> model;
  std::mt19937_64 random(1);
  TimePoint now = kStart;
  std::vector<std::uint64_t> ids;
  std::deque<std::pair<TimePoint, std::uint64_t>> arrivals;
  for (int step = 0; step < 300000; ++step) {
    // Bursts and lulls, so that entries age out in runs and the ring shrinks.
    now += Seconds(step % 50000 < 40000 ? 0 : 1) + Seconds(step % 97 == 0 ? 1 : 0);
    const std::uint64_t id = (step % 3 == 0) ? (random() << 20) : 1 + random() % 400000;
    const std::string user = "u" + std::to_string(id % 1000);
    const auto answer = answer_with(static_cast<std::uint32_t>(id % 7), id % 5 ? "" : "10.0.0.1");
    answered.remember(id, 0, failure_of(user), answer, now);
    // The model forgets as the memory does: by age, oldest first (the cap
    // is never reached here).
    while (!arrivals.empty() && arrivals.front().first < now - kAnsweredEventRetention) {
      model.erase(arrivals.front().second);
      arrivals.pop_front();
    }
    if (model.try_emplace(id, now, user, answer.failures).second) arrivals.emplace_back(now, id);
    ids.push_back(id);
    if (step % 1000 == 999) {
      for (int probe = 0; probe < 200; ++probe) {
        const std::uint64_t some = ids[random() % ids.size()];
        const auto found = model.find(some);
        const std::string user_of = "u" + std::to_string(some % 1000);
        const auto got = answered.find(some, 0, failure_of(user_of));
        if (found == model.end()) {
          EXPECT_FALSE(got) << "id " << some << " at step " << step;
        } else {
          ASSERT_TRUE(got) << "id " << some << " at step " << step;
          EXPECT_EQ(got->failures, std::get<2>(found->second));
        }
      }
    }
  }
  EXPECT_EQ(answered.size(), model.size());
}

// What a spray of never-seen names leaves behind (issue 10): a fixed record
// per event, and nothing once they age out.
TEST(AnsweredEvents, HeapStaysSmallAndIsGivenBackAfterASpray) {
  AnsweredEvents answered(3);
  const std::size_t empty = answered.memory_bytes();
  for (std::uint64_t i = 1; i <= 2 * kMaxAnsweredEvents; ++i) {
    // Every answer carries the blocked source's key, as from a blocked source.
    answered.remember(i * 0x9e3779b97f4a7c15ULL, 0, failure_of("sprayed-name-" + std::to_string(i)),
                      answer_with(1, "203.0.113.66"), kStart + Seconds(i / 1000));
  }
  EXPECT_EQ(answered.size(), kMaxAnsweredEvents);
  // 56 B a record and a 4 B slot at most half full: under 80 B an event.
  EXPECT_LE(answered.memory_bytes(), kMaxAnsweredEvents * 80);
  answered.remember(
      1, 0, failure_of("late"), answer_with(1),
      kStart + Seconds(2 * kMaxAnsweredEvents / 1000) + kAnsweredEventRetention + Seconds(1));
  EXPECT_EQ(answered.size(), 1u);
  EXPECT_LE(answered.memory_bytes(), empty + 8192);
}

TEST(AnsweredEvents, ReplaceLoadsWhatTheStoreKept) {
  AnsweredEvents first(5);
  std::vector<AnsweredEvent> stored;
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    stored.push_back(first.remember(
        i, 1000 + static_cast<std::uint32_t>(i % 3), failure_of("n" + std::to_string(i)),
        answer_with(static_cast<std::uint32_t>(i), i % 2 ? "" : "why"), kStart));
  }
  AnsweredEvents loaded(6);  // another salt, as after a restart
  loaded.replace(stored);
  EXPECT_EQ(loaded.size(), 1000u);
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    const auto request = failure_of("n" + std::to_string(i));
    const auto uid = 1000 + static_cast<std::uint32_t>(i % 3);
    EXPECT_EQ(loaded.find(i, uid, request), first.find(i, uid, request));
    EXPECT_EQ(loaded.find(i, uid, request),
              answer_with(static_cast<std::uint32_t>(i), i % 2 ? "" : "why"));
  }
  loaded.replace({});
  EXPECT_EQ(loaded.size(), 0u);
  EXPECT_FALSE(loaded.find(1, 1001, failure_of("n1")));
}

}  // namespace
}  // namespace acctlock
