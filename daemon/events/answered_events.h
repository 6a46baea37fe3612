// SPDX-License-Identifier: BSD-3-Clause
// The daemon's memory of answered event ids: what makes a resent event count
// once (common/protocol.h, event_id; docs/protocol.md, "Exactly once").
//
// Each state-changing request is remembered with its answer as soon as it is
// applied, and staged into the same commit as its event, so the memory and
// the database agree: after a failed commit the daemon reloads both. Bounded
// by kAnsweredEventRetention and kMaxAnsweredEvents (daemon/store/store.h),
// in memory as on disk. Loop thread only.
//
// Flat on purpose (issue 10): a spray of never-seen names fills this memory
// with 100,000 entries that outlive the sprayed users by minutes. Kept as a
// node per entry, they cost about 200 B each and were scattered between the
// users' own nodes, so that once the sweep had deleted those users their
// pages stayed pinned and the heap could not give them back. Here an entry
// is a fixed 56 B record in one ring buffer, found through an open-addressing
// index of ring positions: two allocations in all, which grow and shrink by
// halves with the count, so memory follows the load both ways.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/time.h"
#include "daemon/store/store.h"

namespace acctlock {

class AnsweredEvents {
 public:
  // `salt` keys the index's hash of event ids (which a hostile peer picks,
  // so it must not be able to make them collide) and the hash of user names.
  AnsweredEvents();
  explicit AnsweredEvents(std::uint64_t salt);

  // The first answer to event `id`, when the same uid already sent it for the
  // same user and type. An id that matches on number only is not a repeat:
  // another uid cannot have a request answered (or suppressed) by guessing.
  // The user is compared by a keyed 64-bit hash, on top of the exact id,
  // uid and type.
  std::optional<protocol::Answer> find(std::uint64_t id, std::uint32_t peer_uid,
                                       const protocol::Request& request) const;

  // Remembers `answer` and returns the record to stage with the event.
  AnsweredEvent remember(std::uint64_t id, std::uint32_t peer_uid, const protocol::Request& request,
                         const protocol::Answer& answer, TimePoint now);

  // Replaces the memory with what the store kept (oldest first).
  void replace(const std::vector<AnsweredEvent>& stored);

  std::size_t size() const { return count_; }
  // The bytes this memory holds on the heap (ring, index, reasons).
  std::size_t memory_bytes() const;

 private:
  struct Entry {
    std::uint64_t id = 0;
    std::uint64_t user_hash = 0;
    TimePoint time{};
    std::int64_t locked_until = 0;
    const std::string* reason = nullptr;  // a key of reasons_; null when empty
    std::uint32_t peer_uid = 0;
    std::uint32_t failures = 0;
    std::uint32_t level = 0;
    std::uint8_t type = 0;
    protocol::Verdict verdict = protocol::Verdict::allowed;
    LockKind lock = LockKind::none;
  };
  static_assert(sizeof(Entry) <= 56, "an answered event stays a small fixed record");
  static constexpr std::uint32_t kEmpty = 0;  // an index slot holds ring position + 1
  static constexpr std::size_t kMinCapacity = 64;

  std::uint64_t user_hash(const std::string& user) const;
  std::size_t home_of(std::uint64_t id) const;
  // The index slot that points at event `id`, or none.
  std::optional<std::size_t> slot_of(std::uint64_t id) const;
  void insert(Entry entry, const std::string& reason);
  void pop_oldest();
  void forget_old(TimePoint now);
  // Moves the entries, oldest first, into a ring of `capacity` and rebuilds
  // the index for it.
  void resize(std::size_t capacity);
  void index(std::size_t position);
  void unindex(std::size_t slot);
  // Answers share their reasons (a blocked source's key, an admin's reason):
  // one copy each, counted.
  const std::string* intern(const std::string& reason);
  void release(const std::string* reason);

  std::uint64_t salt_;
  std::vector<Entry> ring_;  // ring_.size() is the capacity
  std::size_t oldest_ = 0;   // ring position of the oldest entry
  std::size_t count_ = 0;
  std::vector<std::uint32_t> slots_;                         // open addressing, linear probing
  std::map<std::string, std::size_t, std::less<>> reasons_;  // reason -> entries using it
};

}  // namespace acctlock
