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

}  // namespace

void StderrEventLog::record(const LockEvent& event) {
  const HistoryEntry& e = event.entry;
  if (e.event == HistoryEvent::success) return;
  // Every peer-supplied field is escaped: a newline in rhost must not forge
  // a line, an escape sequence must not reach an admin's terminal.
  std::string line = std::string(to_string(e.event)) + " user=" + escaped(e.user);
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
  log(warning ? LogLevel::warning : LogLevel::info, line);
}

}  // namespace acctlock
