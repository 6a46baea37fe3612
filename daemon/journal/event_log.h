// SPDX-License-Identifier: BSD-3-Clause
// Where acctlockd announces what happened to an account: a failure, a lock,
// its expiry, an admin's action. One structured record per event, written
// only after the change is durable, so a consumer never sees an event that a
// crash then undid.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/time.h"
#include "daemon/policy/spray_detector.h"
#include "daemon/store/store.h"

namespace acctlock {

struct LockEvent {
  HistoryEntry entry;  // what, who, where from, which admin
  std::uint32_t failures = 0;
  std::uint32_t level = 0;
  std::optional<TimePoint> locked_until;  // for a timed lock
  // An admin's reason for a source block (acctlock lock --source): the
  // history row names the source in entry.detail, so the reason travels
  // here, to the journal's ACCTLOCK_REASON.
  std::string reason;
  // spray_suspected: what passed the thresholds.
  std::optional<SprayFigures> spray;
  // lockout_scope = unfamiliar: the user's failure state the event concerns,
  // "familiar" or "unfamiliar" (the history row's detail says it too);
  // empty with lockout_scope = account and for events about the account as
  // a whole (a manual lock, an unlock).
  std::string scope;
};

class EventLog {
 public:
  virtual ~EventLog() = default;
  virtual void record(const LockEvent& event) = 0;
  // A commit's events, in order. A log that can write several records with
  // one syscall overrides this: the writer thread publishes every commit's
  // events here, and a write per event was a fifth of its time at 40,000
  // events a second (docs/performance.md, issue 12).
  virtual void record_all(std::span<const LockEvent> events) {
    for (const LockEvent& event : events) record(event);
  }
};

// Readable lines on stderr, for a daemon that runs without a journal (a test,
// a container, the demo). Successes are not logged: they are in the history.
class StderrEventLog : public EventLog {
 public:
  void record(const LockEvent& event) override;
  // The lines of many events in few writes (log_text), each line whole.
  void record_all(std::span<const LockEvent> events) override;
};

// Hands each event to several logs in turn: on the loop, the metrics'
// counters and the admin connections watching (acctlock watch).
class EventLogFanOut : public EventLog {
 public:
  void add(EventLog& log) { logs_.push_back(&log); }
  void record(const LockEvent& event) override {
    for (EventLog* log : logs_) log->record(event);
  }

 private:
  std::vector<EventLog*> logs_;
};

}  // namespace acctlock
