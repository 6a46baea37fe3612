// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/store.h"

#include <array>
#include <string_view>

namespace acctlock {
namespace {

// One table for both directions, so a name cannot be added to one and not the
// other. The names are stored in the database: never rename one.
struct EventName {
  HistoryEvent event;
  const char* name;
};

constexpr std::array<EventName, 11> kEventNames{{
    {HistoryEvent::success, "success"},
    {HistoryEvent::failure, "failure"},
    {HistoryEvent::locked, "locked"},
    {HistoryEvent::expired, "expired"},
    {HistoryEvent::password_changed, "password_changed"},
    {HistoryEvent::manual_lock, "manual_lock"},
    {HistoryEvent::unlocked, "unlocked"},
    {HistoryEvent::reset, "reset"},
    {HistoryEvent::source_blocked, "source_blocked"},
    {HistoryEvent::source_expired, "source_expired"},
    {HistoryEvent::source_unlocked, "source_unlocked"},
}};

}  // namespace

const char* to_string(HistoryEvent event) noexcept {
  for (const auto& entry : kEventNames) {
    if (entry.event == event) return entry.name;
  }
  return "unknown";
}

std::optional<HistoryEvent> history_event_from_string(std::string_view text) noexcept {
  for (const auto& entry : kEventNames) {
    if (text == entry.name) return entry.event;
  }
  return std::nullopt;
}

}  // namespace acctlock
