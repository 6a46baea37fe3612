// SPDX-License-Identifier: BSD-3-Clause
#include "pam_module/lock_message.h"

namespace acctlock::pam {
namespace {

// Rounded up, so that "0 minutes left" is never shown while still locked.
std::int64_t minutes_left(std::int64_t until, std::int64_t now) {
  const std::int64_t seconds = until > now ? until - now : 0;
  return (seconds + 59) / 60;
}

std::string failed_logins(std::uint32_t failures) {
  return std::to_string(failures) + (failures == 1 ? " failed login." : " failed logins.");
}

}  // namespace

std::vector<std::string> lock_message(const protocol::Answer& answer, std::int64_t now) {
  switch (answer.lock) {
    case LockKind::manual:
      return {"The account is locked by an administrator."};
    case LockKind::permanent:
    case LockKind::failures: {
      // A lock without an end (permanent, or unlock_time = never) waits for
      // an administrator; a timed one says how long is left.
      std::string until = "(an administrator must unlock it)";
      if (answer.lock == LockKind::failures && answer.locked_until != 0) {
        const std::int64_t minutes = minutes_left(answer.locked_until, now);
        until = "(" + std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes") +
                " left to unlock)";
      }
      return {"The account is locked due to " + failed_logins(answer.failures), until};
    }
    case LockKind::source: {
      // Not the account: where the attempt comes from. The text names no
      // account, so that it tells an attacker nothing about the name tried.
      // No failures: an administrator's block (acctlock lock --source).
      if (answer.failures == 0) {
        std::vector<std::string> lines{"Logins from this address are blocked by an administrator."};
        if (answer.locked_until != 0) {
          const std::int64_t minutes = minutes_left(answer.locked_until, now);
          lines.push_back("(" + std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes") +
                          " left to unblock)");
        }
        return lines;
      }
      std::string until = "(an administrator must unblock it)";
      if (answer.locked_until != 0) {
        const std::int64_t minutes = minutes_left(answer.locked_until, now);
        until = "(" + std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes") +
                " left to unblock)";
      }
      return {"Logins from this address are blocked due to " + failed_logins(answer.failures),
              until};
    }
    case LockKind::none:
      break;
  }
  return {"The account is locked."};
}

std::string lock_log_text(const protocol::Answer& answer, std::int64_t now) {
  switch (answer.lock) {
    case LockKind::manual:
      return "locked by an administrator" +
             (answer.reason.empty() ? std::string() : " (reason: " + answer.reason + ")");
    case LockKind::permanent:
      return "locked until an administrator unlocks it, after " + std::to_string(answer.failures) +
             " failures (lockout " + std::to_string(answer.level) + ")";
    case LockKind::failures:
      return "locked after " + std::to_string(answer.failures) + " failures (lockout " +
             std::to_string(answer.level) + "), " +
             (answer.locked_until == 0
                  ? std::string("until an administrator unlocks it")
                  : std::to_string(answer.locked_until > now ? answer.locked_until - now : 0) +
                        "s left");
    case LockKind::source:
      if (answer.failures == 0) {
        return "source blocked by an administrator (block of " + answer.reason + ")";
      }
      return "source " + answer.reason + " blocked after " + std::to_string(answer.failures) +
             " failures (block " + std::to_string(answer.level) + "), " +
             (answer.locked_until == 0
                  ? std::string("until an administrator unblocks it")
                  : std::to_string(answer.locked_until > now ? answer.locked_until - now : 0) +
                        "s left");
    case LockKind::none:
      break;
  }
  return "locked";
}

}  // namespace acctlock::pam
