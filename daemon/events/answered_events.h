// SPDX-License-Identifier: BSD-3-Clause
// The daemon's memory of answered event ids: what makes a resent event count
// once (common/protocol.h, event_id; docs/protocol.md, "Exactly once").
//
// Each state-changing request is remembered with its answer as soon as it is
// applied, and staged into the same commit as its event, so the memory and
// the database agree: after a failed commit the daemon reloads both. Bounded
// by kAnsweredEventRetention and kMaxAnsweredEvents (daemon/store/store.h),
// in memory as on disk. Loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/protocol.h"
#include "common/time.h"
#include "daemon/store/store.h"

namespace acctlock {

class AnsweredEvents {
 public:
  // The first answer to event `id`, when the same uid already sent it for the
  // same user and type. An id that matches on number only is not a repeat:
  // another uid cannot have a request answered (or suppressed) by guessing.
  std::optional<protocol::Answer> find(std::uint64_t id, std::uint32_t peer_uid,
                                       const protocol::Request& request) const;

  // Remembers `answer` and returns the record to stage with the event.
  AnsweredEvent remember(std::uint64_t id, std::uint32_t peer_uid, const protocol::Request& request,
                         const protocol::Answer& answer, TimePoint now);

  // Replaces the memory with what the store kept (oldest first).
  void replace(const std::vector<AnsweredEvent>& stored);

  std::size_t size() const { return by_id_.size(); }

 private:
  struct Entry {
    std::uint32_t peer_uid = 0;
    std::string user;
    std::uint8_t type = 0;
    TimePoint time{};
    protocol::Answer answer;
  };
  void insert(std::uint64_t id, Entry entry);
  void forget_old(TimePoint now);

  std::unordered_map<std::uint64_t, Entry> by_id_;
  std::deque<std::pair<TimePoint, std::uint64_t>> order_;  // arrival order
};

}  // namespace acctlock
