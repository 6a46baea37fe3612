// SPDX-License-Identifier: BSD-3-Clause
#include "pam_module/lock_message.h"

#include <stdio.h>

#include "common/lock_state.h"

namespace acctlock::pam {
namespace {

// Rounded up, so that "0 minutes left" is never shown while still locked.
long long minutes_left(std::int64_t until, std::int64_t now) {
  const std::int64_t seconds = until > now ? until - now : 0;
  return static_cast<long long>((seconds + 59) / 60);
}

long long seconds_left(std::int64_t until, std::int64_t now) {
  return static_cast<long long>(until > now ? until - now : 0);
}

const char* logins(std::uint32_t failures) {
  return failures == 1 ? "failed login." : "failed logins.";
}

const char* minutes_word(long long minutes) {
  return minutes == 1 ? "minute" : "minutes";
}

char* add_line(LockMessage& out) {
  return out.count < LockMessage::kMaxLines ? out.lines[out.count++] : nullptr;
}

}  // namespace

void lock_message(const protocol::wire::AnswerFields& answer, std::int64_t now, LockMessage& out) {
  out.count = 0;
  constexpr std::size_t size = LockMessage::kLineSize;
  switch (static_cast<LockKind>(answer.lock)) {
    case LockKind::manual:
      snprintf(add_line(out), size, "The account is locked by an administrator.");
      return;
    case LockKind::permanent:
    case LockKind::failures:
      snprintf(add_line(out), size, "The account is locked due to %lu %s",
               static_cast<unsigned long>(answer.failures), logins(answer.failures));
      // A lock without an end (permanent, or unlock_time = never) waits for
      // an administrator; a timed one says how long is left.
      if (static_cast<LockKind>(answer.lock) == LockKind::failures && answer.locked_until != 0) {
        const long long minutes = minutes_left(answer.locked_until, now);
        snprintf(add_line(out), size, "(%lld %s left to unlock)", minutes, minutes_word(minutes));
      } else {
        snprintf(add_line(out), size, "(an administrator must unlock it)");
      }
      return;
    case LockKind::source:
      // Not the account: where the attempt comes from. The text names no
      // account, so that it tells an attacker nothing about the name tried.
      // No failures: an administrator's block (acctlock lock --source).
      if (answer.failures == 0) {
        snprintf(add_line(out), size, "Logins from this address are blocked by an administrator.");
        if (answer.locked_until == 0) return;
      } else {
        snprintf(add_line(out), size, "Logins from this address are blocked due to %lu %s",
                 static_cast<unsigned long>(answer.failures), logins(answer.failures));
      }
      if (answer.locked_until != 0) {
        const long long minutes = minutes_left(answer.locked_until, now);
        snprintf(add_line(out), size, "(%lld %s left to unblock)", minutes, minutes_word(minutes));
      } else {
        snprintf(add_line(out), size, "(an administrator must unblock it)");
      }
      return;
    case LockKind::none:
      break;
  }
  snprintf(add_line(out), size, "The account is locked.");
}

void lock_log_text(const protocol::wire::AnswerFields& answer, std::int64_t now, char* out,
                   std::size_t capacity) {
  const int reason_size = static_cast<int>(answer.reason.size);
  const char* reason = answer.reason.data == nullptr ? "" : answer.reason.data;
  const auto failures = static_cast<unsigned long>(answer.failures);
  const auto level = static_cast<unsigned long>(answer.level);
  switch (static_cast<LockKind>(answer.lock)) {
    case LockKind::manual:
      if (reason_size == 0) {
        snprintf(out, capacity, "locked by an administrator");
      } else {
        snprintf(out, capacity, "locked by an administrator (reason: %.*s)", reason_size, reason);
      }
      return;
    case LockKind::permanent:
      snprintf(out, capacity,
               "locked until an administrator unlocks it, after %lu failures (lockout %lu)",
               failures, level);
      return;
    case LockKind::failures:
      if (answer.locked_until == 0) {
        snprintf(out, capacity,
                 "locked after %lu failures (lockout %lu), until an administrator unlocks it",
                 failures, level);
      } else {
        snprintf(out, capacity, "locked after %lu failures (lockout %lu), %llds left", failures,
                 level, seconds_left(answer.locked_until, now));
      }
      return;
    case LockKind::source:
      if (answer.failures == 0) {
        snprintf(out, capacity, "source blocked by an administrator (block of %.*s)", reason_size,
                 reason);
      } else if (answer.locked_until == 0) {
        snprintf(out, capacity,
                 "source %.*s blocked after %lu failures (block %lu), until an administrator "
                 "unblocks it",
                 reason_size, reason, failures, level);
      } else {
        snprintf(out, capacity, "source %.*s blocked after %lu failures (block %lu), %llds left",
                 reason_size, reason, failures, level, seconds_left(answer.locked_until, now));
      }
      return;
    case LockKind::none:
      break;
  }
  snprintf(out, capacity, "locked");
}

}  // namespace acctlock::pam
