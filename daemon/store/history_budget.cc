// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/history_budget.h"

#include <algorithm>

namespace acctlock {
namespace {

std::uint64_t minus(std::uint64_t value, std::uint64_t taken) {
  return value > taken ? value - taken : 0;
}

}  // namespace

void HistoryBudget::load(const HistoryUsage& usage) {
  rows_ = usage.rows;
  unprivileged_rows_ = 0;
  rows_by_uid_.clear();
  for (const auto& [uid, rows] : usage.rows_by_peer_uid) {
    rows_by_uid_[uid] = rows;
    unprivileged_rows_ += rows;
  }
  aggregates_.clear();
  keyed_aggregates_.clear();
  named_catch_alls_ = 0;
  for (const HistoryAggregateKey& key : usage.aggregates) add_aggregate(key);
  capped_.clear();
}

void HistoryBudget::forget(const HistoryUsage& removed) {
  rows_ = minus(rows_, removed.rows);
  for (const auto& [uid, rows] : removed.rows_by_peer_uid) {
    const auto found = rows_by_uid_.find(uid);
    if (found == rows_by_uid_.end()) continue;
    const std::uint64_t taken = std::min(found->second, rows);
    unprivileged_rows_ = minus(unprivileged_rows_, taken);
    found->second -= taken;
    if (found->second == 0) rows_by_uid_.erase(found);
  }
  for (const HistoryAggregateKey& key : removed.aggregates) {
    if (aggregates_.erase(key) == 0) continue;
    if (is_named_catch_all(key)) --named_catch_alls_;
    if (is_catch_all(key)) continue;
    const auto keyed = keyed_aggregates_.find(owner_of(key.peer_uid));
    if (keyed != keyed_aggregates_.end() && --keyed->second == 0) keyed_aggregates_.erase(keyed);
  }
  // Room again: the next capping is announced again.
  for (auto it = capped_.begin(); it != capped_.end();) {
    HistoryEntry probe;
    if (*it != 0) probe.peer_uid = *it;
    it = over_cap(probe).empty() ? capped_.erase(it) : std::next(it);
  }
}

std::uint64_t HistoryBudget::rows_of(std::uint32_t uid) const {
  const auto found = rows_by_uid_.find(uid);
  return found == rows_by_uid_.end() ? 0 : found->second;
}

std::string HistoryBudget::over_cap(const HistoryEntry& entry) const {
  if (rows_ >= limits_.max_rows) {
    return "history_max_rows=" + std::to_string(limits_.max_rows) + " reached";
  }
  if (!unprivileged(entry)) return {};
  if (rows_of(*entry.peer_uid) >= limits_.max_rows_per_uid) {
    return "history_max_rows_per_uid=" + std::to_string(limits_.max_rows_per_uid) + " reached";
  }
  const std::uint64_t share = minus(limits_.max_rows, limits_.root_reserved);
  if (unprivileged_rows_ >= share) {
    return "the " + std::to_string(share) +
           " rows that history_root_reserved_rows leaves to non-root peers are taken";
  }
  return {};
}

void HistoryBudget::count_row(const HistoryEntry& entry) {
  ++rows_;
  if (unprivileged(entry)) {
    ++unprivileged_rows_;
    ++rows_by_uid_[*entry.peer_uid];
  }
}

void HistoryBudget::add_aggregate(const HistoryAggregateKey& key) {
  if (!aggregates_.insert(key).second) return;
  if (is_named_catch_all(key)) ++named_catch_alls_;
  if (!is_catch_all(key)) ++keyed_aggregates_[owner_of(key.peer_uid)];
}

void HistoryBudget::admit(HistoryEntry& entry) {
  entry.count = 1;
  entry.first_time.reset();
  // An admin's action is rare, deliberate and root's: always a row.
  if (entry.admin_uid) {
    count_row(entry);
    return;
  }
  const std::string why = over_cap(entry);
  if (why.empty()) {
    count_row(entry);
    return;
  }
  const std::uint32_t owner = unprivileged(entry) ? *entry.peer_uid : 0;
  if (on_capped_ && capped_.insert(owner).second) on_capped_(owner, why);
  ++aggregated_events_;
  entry.first_time = entry.time;
  HistoryAggregateKey key = aggregate_key_of(entry);
  if (aggregates_.count(key) != 0) return;  // one more event of a row that exists
  const auto keyed = keyed_aggregates_.find(owner);
  const std::size_t started = keyed == keyed_aggregates_.end() ? 0 : keyed->second;
  const std::size_t allowed = unprivileged(entry) ? kMaxAggregatesPerUid : kMaxRootAggregates;
  if (!is_catch_all(key) && started >= allowed) {
    entry.service = kAnyOrigin;
    entry.rhost = kAnyOrigin;
    key = aggregate_key_of(entry);
    if (aggregates_.count(key) != 0) return;
  }
  if (is_named_catch_all(key) && named_catch_alls_ >= kMaxNamedCatchAlls) {
    entry.user = kAnyUser;
    key = aggregate_key_of(entry);
    if (aggregates_.count(key) != 0) return;
  }
  add_aggregate(key);
  count_row(entry);
}

}  // namespace acctlock
