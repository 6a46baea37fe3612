// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/events/answered_events.h"

#include <bit>
#include <functional>
#include <random>

namespace acctlock {

namespace {

std::uint64_t random_salt() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

// splitmix64's finaliser: every bit of the (salted) id reaches the low bits
// the index uses.
std::uint64_t mix(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

AnsweredEvents::AnsweredEvents() : AnsweredEvents(random_salt()) {}

AnsweredEvents::AnsweredEvents(std::uint64_t salt) : salt_(salt) {}

std::uint64_t AnsweredEvents::user_hash(const std::string& user) const {
  std::string keyed(reinterpret_cast<const char*>(&salt_), sizeof salt_);
  keyed += user;
  return std::hash<std::string>{}(keyed);
}

std::size_t AnsweredEvents::home_of(std::uint64_t id) const {
  return static_cast<std::size_t>(mix(id ^ salt_)) & (slots_.size() - 1);
}

std::optional<std::size_t> AnsweredEvents::slot_of(std::uint64_t id) const {
  if (count_ == 0) return std::nullopt;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t slot = home_of(id);; slot = (slot + 1) & mask) {
    if (slots_[slot] == kEmpty) return std::nullopt;
    if (ring_[slots_[slot] - 1].id == id) return slot;
  }
}

std::optional<protocol::Answer> AnsweredEvents::find(std::uint64_t id, std::uint32_t peer_uid,
                                                     const protocol::Request& request) const {
  const auto slot = slot_of(id);
  if (!slot) return std::nullopt;
  const Entry& entry = ring_[slots_[*slot] - 1];
  if (entry.peer_uid != peer_uid || entry.type != static_cast<std::uint8_t>(request.type) ||
      entry.user_hash != user_hash(request.user)) {
    return std::nullopt;
  }
  protocol::Answer answer;
  answer.verdict = entry.verdict;
  answer.lock = entry.lock;
  answer.failures = entry.failures;
  answer.level = entry.level;
  answer.locked_until = entry.locked_until;
  if (entry.reason) answer.reason = *entry.reason;
  return answer;
}

AnsweredEvent AnsweredEvents::remember(std::uint64_t id, std::uint32_t peer_uid,
                                       const protocol::Request& request,
                                       const protocol::Answer& answer, TimePoint now) {
  AnsweredEvent record;
  record.id = id;
  record.peer_uid = peer_uid;
  record.user = request.user;
  record.type = static_cast<std::uint8_t>(request.type);
  record.time = now;
  protocol::encode_answer(answer, record.answer_frame);
  forget_old(now);
  Entry entry;
  entry.id = id;
  entry.user_hash = user_hash(request.user);
  entry.time = now;
  entry.locked_until = answer.locked_until;
  entry.peer_uid = peer_uid;
  entry.failures = answer.failures;
  entry.level = answer.level;
  entry.type = record.type;
  entry.verdict = answer.verdict;
  entry.lock = answer.lock;
  insert(entry, answer.reason);
  return record;
}

void AnsweredEvents::replace(const std::vector<AnsweredEvent>& stored) {
  ring_ = {};
  slots_ = {};
  reasons_.clear();
  oldest_ = 0;
  count_ = 0;
  for (const AnsweredEvent& record : stored) {
    const auto decoded = protocol::decode_answer(record.answer_frame);
    if (!decoded.message) continue;  // written by this code, so never; but never trusted
    const protocol::Answer& answer = *decoded.message;
    Entry entry;
    entry.id = record.id;
    entry.user_hash = user_hash(record.user);
    entry.time = record.time;
    entry.locked_until = answer.locked_until;
    entry.peer_uid = record.peer_uid;
    entry.failures = answer.failures;
    entry.level = answer.level;
    entry.type = record.type;
    entry.verdict = answer.verdict;
    entry.lock = answer.lock;
    insert(entry, answer.reason);
  }
}

void AnsweredEvents::insert(Entry entry, const std::string& reason) {
  // A colliding id (another uid's, or a replay) keeps its first entry: the
  // first answer is the one a resend must get.
  if (slot_of(entry.id)) return;
  if (count_ >= kMaxAnsweredEvents) pop_oldest();
  if (count_ == ring_.size()) {
    resize(std::min(std::max(kMinCapacity, 2 * ring_.size()), kMaxAnsweredEvents));
  }
  entry.reason = intern(reason);
  const std::size_t position = (oldest_ + count_) % ring_.size();
  ring_[position] = entry;
  ++count_;
  index(position);
}

void AnsweredEvents::pop_oldest() {
  const Entry& oldest = ring_[oldest_];
  unindex(*slot_of(oldest.id));
  release(oldest.reason);
  ring_[oldest_] = Entry{};
  oldest_ = (oldest_ + 1) % ring_.size();
  --count_;
  // Give memory back as the count falls: at a quarter full, half the ring.
  if (ring_.size() > kMinCapacity && count_ <= ring_.size() / 4) resize(ring_.size() / 2);
}

void AnsweredEvents::forget_old(TimePoint now) {
  while (count_ > 0 && ring_[oldest_].time < now - kAnsweredEventRetention) pop_oldest();
}

void AnsweredEvents::resize(std::size_t capacity) {
  std::vector<Entry> ring(capacity);
  for (std::size_t i = 0; i < count_; ++i) ring[i] = ring_[(oldest_ + i) % ring_.size()];
  ring_ = std::move(ring);
  oldest_ = 0;
  // At most half full, so that probes stay short.
  slots_ = std::vector<std::uint32_t>(std::bit_ceil(2 * capacity), kEmpty);
  for (std::size_t i = 0; i < count_; ++i) index(i);
}

void AnsweredEvents::index(std::size_t position) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t slot = home_of(ring_[position].id);
  while (slots_[slot] != kEmpty) slot = (slot + 1) & mask;
  slots_[slot] = static_cast<std::uint32_t>(position + 1);
}

void AnsweredEvents::unindex(std::size_t slot) {
  // Backward-shift deletion: pull each later entry of the probe run into the
  // hole when its home allows, so that no tombstone is ever needed.
  const std::size_t mask = slots_.size() - 1;
  std::size_t hole = slot;
  std::size_t next = slot;
  for (;;) {
    next = (next + 1) & mask;
    if (slots_[next] == kEmpty) break;
    const std::size_t home = home_of(ring_[slots_[next] - 1].id);
    // The entry at `next` stays when its home lies cyclically in (hole, next].
    const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
    if (stays) continue;
    slots_[hole] = slots_[next];
    hole = next;
  }
  slots_[hole] = kEmpty;
}

const std::string* AnsweredEvents::intern(const std::string& reason) {
  if (reason.empty()) return nullptr;
  const auto it = reasons_.try_emplace(reason, 0).first;
  ++it->second;
  return &it->first;
}

void AnsweredEvents::release(const std::string* reason) {
  if (!reason) return;
  const auto it = reasons_.find(*reason);
  if (it != reasons_.end() && --it->second == 0) reasons_.erase(it);
}

std::size_t AnsweredEvents::memory_bytes() const {
  // A map node: the string (and its text past the short-string buffer), the
  // count and the tree links, as libstdc++ lays them out.
  constexpr std::size_t kNode = sizeof(std::string) + sizeof(std::size_t) + 32;
  std::size_t reasons = 0;
  for (const auto& entry : reasons_) {
    reasons += kNode + (entry.first.size() > 15 ? entry.first.capacity() + 1 : 0);
  }
  return ring_.capacity() * sizeof(Entry) + slots_.capacity() * sizeof(std::uint32_t) + reasons;
}

}  // namespace acctlock
