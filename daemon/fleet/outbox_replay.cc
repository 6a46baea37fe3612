// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/fleet/outbox_replay.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/policy/source_policy.h"

namespace acctlock {
namespace {

// The shared rows `events` touch, for the replaying service to hold.
std::vector<std::pair<SharedTable, std::string>> rows_touched(
    const std::vector<LocalOutbox::Entry>& events, unsigned prefix_v6) {
  std::set<std::pair<SharedTable, std::string>> keys;
  const auto user_rows = [&](const std::string& user) {
    keys.emplace(SharedTable::users, user);
    keys.emplace(SharedTable::unfamiliar, user);
    keys.emplace(SharedTable::familiar, user);
  };
  for (const auto& [seq, event] : events) {
    switch (event.kind) {
      case ReplayableEvent::Kind::request:
        if (!event.request.user_unknown) user_rows(event.request.user);
        if (const auto source =
                normalise_source(event.request.rhost, event.request.ruser, prefix_v6)) {
          keys.emplace(SharedTable::sources, source->key);
        }
        break;
      case ReplayableEvent::Kind::lock:
      case ReplayableEvent::Kind::unlock:
        user_rows(event.key);
        break;
      case ReplayableEvent::Kind::lock_source:
      case ReplayableEvent::Kind::unlock_source:
        keys.emplace(SharedTable::sources, event.key);
        break;
    }
  }
  return {keys.begin(), keys.end()};
}

}  // namespace

CatchUpResult catch_up(PostgresqlStore& store,
                       const std::function<void(LockoutService&)>& configure,
                       std::size_t max_batches, std::size_t& batch_size) {
  CatchUpResult result;
  batch_size = std::clamp(batch_size, kMinReplayBatch, kMaxReplayBatch);
  for (std::size_t batch = 0; batch < max_batches; ++batch) {
    const auto events = store.events_to_replay(batch_size);
    if (!events) return result;
    result.reachable = true;
    if (events->empty()) {
      result.caught_up = true;
      return result;
    }
    LockoutService service(LockoutRules{}, store);
    configure(service);
    service.adopt_shared(
        store.read_shared_rows(rows_touched(*events, service.source_rules().prefix_v6)), PendingWork{},
        wall_clock_now());
    // A batch whose commit timed out went to the outbox, but may have
    // landed: its events the server has are not played again.
    std::vector<std::uint64_t> ids;
    for (const auto& [seq, event] : *events) {
      if (event.kind == ReplayableEvent::Kind::request && event.request.event_id != 0) {
        ids.push_back(event.request.event_id);
      }
    }
    const std::set<std::uint64_t> landed = store.answered_event_ids(ids);
    PendingWork work;
    std::size_t skipped = 0;
    for (const auto& [seq, event] : *events) {
      if (event.kind == ReplayableEvent::Kind::request && event.request.event_id != 0 &&
          landed.contains(event.request.event_id)) {
        ++skipped;
        continue;
      }
      service.replay(event, work);
    }
    result.already_landed += skipped;
    try {
      store.commit_replayed(work.to_store_batch(), events->back().seq);
    } catch (const ServerUnreachable&) {
      batch_size = std::max(kMinReplayBatch, batch_size / 2);
      throw;
    }
    batch_size = std::min(kMaxReplayBatch, batch_size + batch_size / 2);
    result.replayed += events->size() - skipped;
  }
  return result;
}

}  // namespace acctlock
