// SPDX-License-Identifier: BSD-3-Clause
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/lock_state.h"
#include "pam_module/lock_message.h"

namespace acctlock::pam {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Answer = protocol::wire::AnswerFields;

Answer locked(LockKind kind, std::uint32_t failures, std::int64_t until) {
  Answer answer;
  answer.verdict = protocol::Verdict::locked;
  answer.lock = static_cast<std::uint8_t>(kind);
  answer.failures = failures;
  answer.level = 1;
  answer.locked_until = until;
  return answer;
}

// The module's two calls, with the text in std::string for the matchers.
std::vector<std::string> lock_message(const Answer& answer, std::int64_t now) {
  LockMessage message;
  pam::lock_message(answer, now, message);
  return std::vector<std::string>(message.lines, message.lines + message.count);
}

std::string lock_log_text(const Answer& answer, std::int64_t now) {
  char text[kLockLogTextSize];
  pam::lock_log_text(answer, now, text, sizeof text);
  return text;
}

protocol::wire::Text text(const char* value) {
  return protocol::wire::Text{value, std::char_traits<char>::length(value)};
}

TEST(LockMessageTest, ATimedLockSaysHowManyFailuresAndMinutesLeftRoundedUp) {
  EXPECT_THAT(
      lock_message(locked(LockKind::failures, 3, 1000 + 14 * 60), 1000),
      ElementsAre("The account is locked due to 3 failed logins.", "(14 minutes left to unlock)"));
  EXPECT_THAT(lock_message(locked(LockKind::failures, 3, 1000 + 13 * 60 + 1), 1000),
              ElementsAre(HasSubstr("3 failed logins"), "(14 minutes left to unlock)"));
  EXPECT_THAT(
      lock_message(locked(LockKind::failures, 1, 1001), 1000),
      ElementsAre("The account is locked due to 1 failed login.", "(1 minute left to unlock)"));
}

TEST(LockMessageTest, LocksWithoutAnEndSayAnAdministratorMustUnlock) {
  EXPECT_THAT(lock_message(locked(LockKind::permanent, 3, 0), 1000),
              ElementsAre(HasSubstr("3 failed logins"), "(an administrator must unlock it)"));
  EXPECT_THAT(lock_message(locked(LockKind::failures, 3, 0), 1000),
              ElementsAre(HasSubstr("3 failed logins"), "(an administrator must unlock it)"));
}

TEST(LockMessageTest, AManualLockNamesTheAdministratorButNotTheReason) {
  Answer answer = locked(LockKind::manual, 0, 0);
  answer.reason = text("incident 42");
  EXPECT_THAT(lock_message(answer, 1000),
              ElementsAre("The account is locked by an administrator."));
  EXPECT_THAT(lock_log_text(answer, 1000), HasSubstr("reason: incident 42"));
}

TEST(LockMessageTest, TheLogLineCarriesLevelAndSecondsLeft) {
  EXPECT_EQ(lock_log_text(locked(LockKind::failures, 4, 1090), 1000),
            "locked after 4 failures (lockout 1), 90s left");
}

TEST(LockMessageTest, ABlockedSourceSaysSoAndNamesNoAccount) {
  Answer answer = locked(LockKind::source, 10, 1000 + 5 * 60);
  answer.reason = text("203.0.113.5");
  EXPECT_THAT(lock_message(answer, 1000),
              ElementsAre("Logins from this address are blocked due to 10 failed logins.",
                          "(5 minutes left to unblock)"));
  EXPECT_EQ(lock_log_text(answer, 1000),
            "source 203.0.113.5 blocked after 10 failures (block 1), 300s left");
  answer.locked_until = 0;
  EXPECT_THAT(lock_message(answer, 1000),
              ElementsAre(HasSubstr("10 failed logins"), "(an administrator must unblock it)"));
}

TEST(LockMessageTest, AnAdministratorsSourceBlockSaysSoWithoutAFailureCount) {
  // An admin's block (acctlock lock --source) counts no failures: the
  // daemon answers failures 0 and names the block in `reason`.
  Answer answer = locked(LockKind::source, 0, 0);
  answer.reason = text("203.0.113.0/24");
  EXPECT_THAT(lock_message(answer, 1000),
              ElementsAre("Logins from this address are blocked by an administrator."));
  EXPECT_EQ(lock_log_text(answer, 1000),
            "source blocked by an administrator (block of 203.0.113.0/24)");
  answer.locked_until = 1000 + 2 * 60;
  EXPECT_THAT(lock_message(answer, 1000),
              ElementsAre(HasSubstr("by an administrator"), "(2 minutes left to unblock)"));
}

TEST(LockMessageTest, TheLongestReasonFitsTheLogLine) {
  const std::string reason(protocol::kMaxReason, 'r');
  Answer answer = locked(LockKind::manual, 0, 0);
  answer.reason = protocol::wire::Text{reason.data(), reason.size()};
  EXPECT_EQ(lock_log_text(answer, 1000), "locked by an administrator (reason: " + reason + ")");
  answer = locked(LockKind::source, 4294967295u, 9223372036854775807);
  answer.level = 4294967295u;
  answer.reason = protocol::wire::Text{reason.data(), reason.size()};
  EXPECT_EQ(lock_log_text(answer, 1000),
            "source " + reason +
                " blocked after 4294967295 failures (block 4294967295), 9223372036854774807s left");
}

}  // namespace
}  // namespace acctlock::pam
