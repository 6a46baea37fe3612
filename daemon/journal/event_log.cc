#include "daemon/journal/event_log.h"

#include <ctime>
#include <string>

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
  std::string line = std::string(to_string(e.event)) + " user=" + e.user;
  if (!e.service.empty()) line += " service=" + e.service;
  if (!e.rhost.empty()) line += " rhost=" + e.rhost;
  if (!e.tty.empty()) line += " tty=" + e.tty;
  line += " failures=" + std::to_string(event.failures);
  line += " level=" + std::to_string(event.level);
  if (event.locked_until) line += " locked_until=\"" + format_time(*event.locked_until) + "\"";
  if (e.admin_uid) line += " admin_uid=" + std::to_string(*e.admin_uid);
  if (!e.detail.empty()) line += " detail=\"" + e.detail + "\"";
  const bool warning = e.event == HistoryEvent::locked || e.event == HistoryEvent::manual_lock;
  log(warning ? LogLevel::warning : LogLevel::info, line);
}

}  // namespace acctlock
