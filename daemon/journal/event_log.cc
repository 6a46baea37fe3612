// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/journal/event_log.h"

#include <ctime>
#include <string>

#include "common/escaped_text.h"
#include "daemon/log.h"

namespace acctlock {
namespace {

std::string format_time(TimePoint time) {
  const std::time_t seconds = time.time_since_epoch().count();
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %Z", &local);
  return text;
}

// The event's log line, without its level prefix; false for an event that
// is not logged.
bool event_line(const LockEvent& event, LogLevel& level, std::string& line) {
  const HistoryEntry& e = event.entry;
  if (e.event == HistoryEvent::success) return false;
  // Every peer-supplied field is escaped: a newline in rhost must not forge
  // a line, an escape sequence must not reach an admin's terminal.
  line = std::string(to_string(e.event)) + " user=" + escaped(e.user);
  if (!e.service.empty()) line += " service=" + escaped(e.service);
  if (!e.rhost.empty()) line += " rhost=" + escaped(e.rhost);
  if (!e.tty.empty()) line += " tty=" + escaped(e.tty);
  line += " failures=" + std::to_string(event.failures);
  line += " level=" + std::to_string(event.level);
  if (event.locked_until) line += " locked_until=\"" + format_time(*event.locked_until) + "\"";
  if (e.admin_uid) line += " admin_uid=" + std::to_string(*e.admin_uid);
  if (!e.detail.empty()) line += " detail=\"" + escaped(e.detail) + "\"";
  if (!event.reason.empty()) line += " reason=\"" + escaped(event.reason) + "\"";
  if (!event.scope.empty()) line += " scope=" + event.scope;
  const bool warning = e.event == HistoryEvent::locked || e.event == HistoryEvent::manual_lock ||
                       e.event == HistoryEvent::spray_suspected;
  level = warning ? LogLevel::warning : LogLevel::info;
  return true;
}

}  // namespace

void StderrEventLog::record(const LockEvent& event) {
  LogLevel level{};
  std::string line;
  if (event_line(event, level, line)) log(level, line);
}

void StderrEventLog::record_all(std::span<const LockEvent> events) {
  // Whole lines only, and a bounded buffer: written out every 64 KiB.
  constexpr std::size_t kFlushAt = 64 * 1024;
  std::string text;
  LogLevel level{};
  std::string line;
  for (const LockEvent& event : events) {
    if (!event_line(event, level, line)) continue;
    append_log_line(text, level, line);
    if (text.size() >= kFlushAt) {
      log_text(text);
      text.clear();
    }
  }
  if (!text.empty()) log_text(text);
}

}  // namespace acctlock
