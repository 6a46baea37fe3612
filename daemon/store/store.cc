// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/store.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <string_view>

namespace acctlock {
namespace {

// One table for both directions, so a name cannot be added to one and not the
// other. The names are stored in the database: never rename one.
struct EventName {
  HistoryEvent event;
  const char* name;
};

constexpr std::array<EventName, 12> kEventNames{{
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
    {HistoryEvent::spray_suspected, "spray_suspected"},
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

HistoryAggregateKey aggregate_key_of(const HistoryEntry& entry) {
  return HistoryAggregateKey{entry.peer_uid, entry.user, entry.event, entry.service, entry.rhost};
}

std::vector<HistoryEntry> merge_aggregate_entries(const std::vector<HistoryEntry>& history) {
  std::vector<HistoryEntry> merged;
  std::map<HistoryAggregateKey, std::size_t> index;
  for (const HistoryEntry& entry : history) {
    if (!entry.is_aggregate()) continue;
    const auto [found, added] = index.try_emplace(aggregate_key_of(entry), merged.size());
    if (added) {
      HistoryEntry& first = merged.emplace_back(entry);
      first.count = 1;
      continue;
    }
    HistoryEntry& into = merged[found->second];
    into.count += 1;
    into.first_time = std::min(*into.first_time, *entry.first_time);
    into.time = std::max(into.time, entry.time);
    into.tty = entry.tty;
    into.ruser = entry.ruser;
    into.detail = entry.detail;
  }
  return merged;
}

std::string encode_failure_times(const std::vector<TimePoint>& times) {
  std::string text;
  for (const TimePoint time : times) {
    if (!text.empty()) text += ' ';
    text += std::to_string(time.time_since_epoch().count());
  }
  return text;
}

std::vector<TimePoint> decode_failure_times(std::string_view text, const std::string& owner) {
  std::vector<TimePoint> times;
  const auto broken = [&](const std::string& why) {
    return StoreError(owner + ": earlier_failures is not a list of times (" + why + ")");
  };
  while (!text.empty()) {
    if (times.size() == kMaxDeny) throw broken("more than " + std::to_string(kMaxDeny));
    const std::size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    std::int64_t seconds = 0;
    const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), seconds);
    if (word.empty() || error != std::errc{} || end != word.data() + word.size()) {
      throw broken("\"" + std::string(word) + "\"");
    }
    times.push_back(TimePoint{Seconds{seconds}});
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
    if (text.empty()) throw broken("a trailing space");
  }
  return times;
}

Store::FailureCounts Store::count_failures(TimePoint hour_ago, TimePoint day_ago,
                                           TimePoint hours_from, std::size_t hours,
                                           const std::optional<std::string>& host) {
  FailureCounts counts;
  counts.lockouts_last_hour = count_events(HistoryEvent::locked, hour_ago, host);
  counts.lockouts_last_day = count_events(HistoryEvent::locked, day_ago, host);
  counts.failures_last_hour =
      count_events(HistoryEvent::failure, hour_ago, host) + counts.lockouts_last_hour;
  counts.failures_last_day =
      count_events(HistoryEvent::failure, day_ago, host) + counts.lockouts_last_day;
  counts.per_hour = failures_per_hour(hours_from, hours, host);
  return counts;
}

}  // namespace acctlock
