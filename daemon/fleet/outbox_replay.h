// SPDX-License-Identifier: BSD-3-Clause
// Catching up after a partition (issue 15, degraded mode): the events this
// host kept in its outbox while PostgreSQL was away (LocalOutbox) are done
// again, in their order and at their own times, against the fleet's state
// as it is now, and committed to it in batches.
//
// Each batch is replayed by a LockoutService of its own, holding only the
// rows the batch's events touch, read from the fleet just before: the live
// service's memory already counts these events, so replaying them there
// would count them twice. The policy steps the replay records are merged
// into the rows under their row locks like any host's commit, so another
// host's failures in the meantime add up with these. Runs on a worker
// thread, never on the event loop.
#pragma once

#include <cstdint>
#include <functional>

#include "daemon/lockout_service.h"
#include "daemon/store/postgresql/postgresql_store.h"

namespace acctlock {

struct CatchUpResult {
  bool reachable = false;  // the server answered
  bool caught_up = false;  // the outbox is empty: commits go to the server again
  std::uint64_t replayed = 0;
  // Events left out because the server had them already: their commit
  // timed out here but landed there.
  std::uint64_t already_landed = 0;
};

// Events per replayed batch: one transaction of the fleet's database each.
// A batch replays its events' history rows, answered ids and merged rows in
// one transaction, which must finish within the store's 1 s statement
// bound: under load a batch of 500 did not, the host stayed apart, and
// tried the same batch again. So batches start small, halve after a replay
// the server did not answer in time (down to kMinReplayBatch), and grow
// back by one half again after each replay that went through.
inline constexpr std::size_t kMaxReplayBatch = 100;
inline constexpr std::size_t kMinReplayBatch = 10;

// Replays at most `max_batches` batches of the outbox, of `batch_size`
// events each (adjusted as above: the caller keeps it between calls).
// `configure` gives a fresh service the daemon's rules (and a group lookup
// safe on this thread). Throws StoreError when a replay fails.
CatchUpResult catch_up(PostgresqlStore& store,
                       const std::function<void(LockoutService&)>& configure,
                       std::size_t max_batches, std::size_t& batch_size);

}  // namespace acctlock
