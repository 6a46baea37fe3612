// SPDX-License-Identifier: BSD-3-Clause
// `acctlock watch`: admin connections that stream lock events as they are
// committed. The batch writer hands every committed event to EventWatchers
// (an EventLog, beside the journal), which turns it into one JSON line and
// queues it on each watching connection.
//
// A watcher that does not read cannot make the daemon hold more: each has a
// queue of at most kMaxQueuedEvents lines, and one that overflows is sent a
// last {"overflow": true} line and dropped. Its write deadline drops a
// reader that stalls outright sooner still.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "daemon/journal/event_log.h"

namespace acctlock {

inline constexpr std::size_t kMaxQueuedEvents = 1024;
inline constexpr std::size_t kMaxWatchers = 64;

class EventWatcher {
 public:
  virtual ~EventWatcher() = default;
  // One event's JSON line (newline included). `success` lets a watcher that
  // did not ask for successes skip them.
  virtual void deliver(const std::shared_ptr<const std::string>& line, bool success) = 0;
};

// The JSON object of one event, as a watch line carries it.
std::string watch_line(const LockEvent& event);
// The last line an overflowing watcher gets.
std::string overflow_line();

class EventWatchers : public EventLog {
 public:
  // Held weakly: a connection that closes simply stops receiving.
  void add(const std::shared_ptr<EventWatcher>& watcher);
  std::size_t size();
  void record(const LockEvent& event) override;

 private:
  void drop_expired();
  std::vector<std::weak_ptr<EventWatcher>> watchers_;
};

}  // namespace acctlock
