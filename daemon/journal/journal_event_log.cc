// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/journal/journal_event_log.h"

#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <array>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "daemon/log.h"

namespace acctlock {
namespace {

// Fixed forever: consumers filter on them and the catalog is keyed by them.
//
// A failure is a debug record: journald rate-limits each service per
// priority class (emergency to critical, error, warning, notice and info,
// debug), so a flood of failures during an attack fills only the debug
// class and can never push out a state change (locked, manual_lock:
// warning; expired, unlocked, reset, password_changed: notice). The unit
// raises the service's limit so that a mass lockout is recorded in full.
constexpr std::array<JournalMessage, 11> kJournalMessages{{
    {HistoryEvent::failure, "350a71c68abd45c185c99fdbe5ba25ad", LOG_DEBUG},
    {HistoryEvent::locked, "ac30e5a38ec54c1786b0b040cf6c0bd9", LOG_WARNING},
    {HistoryEvent::expired, "ab6d8dc38fa44074a9d4cfaa4ecf7413", LOG_NOTICE},
    {HistoryEvent::manual_lock, "74efde24d74c49688bc754d820577978", LOG_WARNING},
    {HistoryEvent::unlocked, "a8042509863149ee9f86c9f4a327b1e0", LOG_NOTICE},
    {HistoryEvent::reset, "4841b847efbb4a748b0adb6885182fbc", LOG_NOTICE},
    {HistoryEvent::password_changed, "0cdd50308ec1458fb32c17934c1f2624", LOG_NOTICE},
    {HistoryEvent::source_blocked, "f0d6445c7f8a4917a5ffb8fb2da52f91", LOG_WARNING},
    {HistoryEvent::source_expired, "b45e5b55ad724677aebc31c3569917cb", LOG_NOTICE},
    {HistoryEvent::source_unlocked, "3400549c4add4bcc9fa18e4ea481b765", LOG_NOTICE},
    {HistoryEvent::spray_suspected, "199f2be88afa4c63a49fb193cf4ae33d", LOG_WARNING},
}};

std::string iso8601_utc(TimePoint time) {
  const std::time_t seconds = time.time_since_epoch().count();
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// The one-line MESSAGE, for people reading journalctl without -o json.
std::string message_text(const LockEvent& event) {
  const HistoryEntry& e = event.entry;
  const std::string from = e.rhost.empty() ? std::string() : " from " + e.rhost;
  const std::string via = e.service.empty() ? std::string() : " (" + e.service + ")";
  const std::string admin = e.admin_uid ? " by uid " + std::to_string(*e.admin_uid) : std::string();
  // lockout_scope = unfamiliar: which of the user's failure states.
  const std::string scope =
      event.scope.empty() ? std::string() : " for " + event.scope + " sources";
  switch (e.event) {
    case HistoryEvent::failure:
      return "Failed login for " + e.user + from + via + ", " + std::to_string(event.failures) +
             " counted" + scope;
    case HistoryEvent::locked:
      return "Account " + e.user + " locked" + scope + " after " + std::to_string(event.failures) +
             " failed logins (lockout " + std::to_string(event.level) + "), " +
             (event.locked_until ? "until " + iso8601_utc(*event.locked_until)
                                 : std::string("until an administrator unlocks it"));
    case HistoryEvent::expired:
      return "Lock of account " + e.user + scope + " expired";
    case HistoryEvent::manual_lock:
      return "Account " + e.user + " locked" + admin +
             (e.detail.empty() ? std::string() : ": " + e.detail);
    case HistoryEvent::unlocked:
      return "Account " + e.user + " unlocked" + admin;
    case HistoryEvent::reset:
      return "Failures of account " + e.user + " reset" + admin;
    case HistoryEvent::password_changed:
      return "Password of account " + e.user + " changed; failure lock lifted";
    case HistoryEvent::source_blocked:
      if (e.admin_uid) {
        // acctlock lock --source: an admin's block, not a count.
        return "Source " + e.detail + " blocked" + admin +
               (event.locked_until ? " until " + iso8601_utc(*event.locked_until)
                                   : std::string(" until an administrator unblocks it")) +
               (event.reason.empty() ? std::string() : ": " + event.reason);
      }
      return "Source " + e.detail + " blocked after " + std::to_string(event.failures) +
             " failed logins (block " + std::to_string(event.level) + "), the last for " + e.user +
             via + ", " +
             (event.locked_until ? "until " + iso8601_utc(*event.locked_until)
                                 : std::string("until an administrator unblocks it"));
    case HistoryEvent::source_expired:
      return "Block of source " + e.detail + " expired";
    case HistoryEvent::source_unlocked:
      return "Source " + e.detail + " unblocked" + admin;
    case HistoryEvent::spray_suspected:
      return "Password spray suspected: " + e.detail;
    case HistoryEvent::success:
      break;
  }
  return std::string(to_string(e.event)) + " " + e.user;
}

}  // namespace

std::span<const JournalMessage> journal_messages() noexcept {
  return kJournalMessages;
}

const JournalMessage* journal_message_for(HistoryEvent event) noexcept {
  for (const JournalMessage& message : kJournalMessages) {
    if (message.event == event) return &message;
  }
  return nullptr;
}

void JournalEventLog::record(const LockEvent& event) {
  const JournalMessage* kind = journal_message_for(event.entry.event);
  if (kind == nullptr) return;
  const HistoryEntry& e = event.entry;

  std::vector<std::string> fields{
      "MESSAGE=" + message_text(event),
      "MESSAGE_ID=" + std::string(kind->message_id),
      "PRIORITY=" + std::to_string(kind->priority),
      "SYSLOG_IDENTIFIER=acctlockd",
      "ACCTLOCK_EVENT=" + std::string(to_string(e.event)),
      "ACCTLOCK_USER=" + e.user,
      "ACCTLOCK_FAILURES=" + std::to_string(event.failures),
      "ACCTLOCK_LEVEL=" + std::to_string(event.level),
  };
  // Empty fields are left out, so that ACCTLOCK_RHOST= matches only events
  // that had one.
  const auto add = [&](const char* name, const std::string& value) {
    if (!value.empty()) fields.push_back(std::string(name) + "=" + value);
  };
  add("ACCTLOCK_SERVICE", e.service);
  add("ACCTLOCK_RHOST", e.rhost);
  add("ACCTLOCK_TTY", e.tty);
  add("ACCTLOCK_RUSER", e.ruser);
  const bool about_source = e.event == HistoryEvent::source_blocked ||
                            e.event == HistoryEvent::source_expired ||
                            e.event == HistoryEvent::source_unlocked;
  add(about_source ? "ACCTLOCK_SOURCE" : "ACCTLOCK_REASON", e.detail);
  if (about_source) add("ACCTLOCK_REASON", event.reason);
  if (event.spray) {
    add("ACCTLOCK_SPRAY_USERS", std::to_string(event.spray->users));
    add("ACCTLOCK_SPRAY_SOURCES", std::to_string(event.spray->sources));
    add("ACCTLOCK_SPRAY_FAILURES", std::to_string(event.spray->failures));
    add("ACCTLOCK_SPRAY_WINDOW", std::to_string(event.spray->window.count()));
  }
  if (event.locked_until) add("ACCTLOCK_LOCKED_UNTIL", iso8601_utc(*event.locked_until));
  if (e.admin_uid) add("ACCTLOCK_ADMIN_UID", std::to_string(*e.admin_uid));
  add("ACCTLOCK_SCOPE", event.scope);

  std::vector<iovec> vector;
  vector.reserve(fields.size());
  for (std::string& field : fields) vector.push_back({field.data(), field.size()});
  if (const int rc = sd_journal_sendv(vector.data(), static_cast<int>(vector.size())); rc < 0) {
    // The journal is gone (restarting, or full): the event must not vanish
    // without a trace, and it is in the history anyway.
    log_warning("journal unavailable (" + std::string(std::strerror(-rc)) +
                "): " + message_text(event));
  }
}

}  // namespace acctlock
