// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/admin/event_watchers.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/admin/admin_commands.h"

namespace acctlock {

std::string watch_line(const LockEvent& event) {
  using nlohmann::json;
  const HistoryEntry& e = event.entry;
  json line{
      {"time", to_iso8601(e.time)},
      {"user", e.user},
      {"event", to_string(e.event)},
      {"service", e.service},
      {"rhost", e.rhost},
      {"tty", e.tty},
      {"ruser", e.ruser},
      {"admin_uid", e.admin_uid ? json(*e.admin_uid) : json(nullptr)},
      {"detail", e.detail},
      {"failures", event.failures},
      {"level", event.level},
      {"locked_until", event.locked_until ? json(to_iso8601(*event.locked_until)) : json(nullptr)},
  };
  if (!event.reason.empty()) line["reason"] = event.reason;  // an admin's source block
  // Names and details come from clients: replace bad UTF-8 rather than throw.
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
}

std::string overflow_line() {
  return nlohmann::json{{"overflow", true},
                        {"text", "this watcher fell " + std::to_string(kMaxQueuedEvents) +
                                     " events behind and was dropped"}}
             .dump() +
         '\n';
}

void EventWatchers::add(const std::shared_ptr<EventWatcher>& watcher) {
  drop_expired();
  watchers_.push_back(watcher);
}

std::size_t EventWatchers::size() {
  drop_expired();
  return watchers_.size();
}

void EventWatchers::record(const LockEvent& event) {
  drop_expired();
  if (watchers_.empty()) return;
  const auto line = std::make_shared<const std::string>(watch_line(event));
  const bool success = event.entry.event == HistoryEvent::success;
  // A copy: delivering may close a watcher, which must not touch the vector.
  for (const auto& weak : std::vector<std::weak_ptr<EventWatcher>>(watchers_)) {
    if (const auto watcher = weak.lock()) watcher->deliver(line, success);
  }
}

void EventWatchers::drop_expired() {
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [](const auto& weak) { return weak.expired(); }),
                  watchers_.end());
}

}  // namespace acctlock
