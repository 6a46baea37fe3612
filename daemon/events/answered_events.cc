// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/events/answered_events.h"

namespace acctlock {

std::optional<protocol::Answer> AnsweredEvents::find(std::uint64_t id, std::uint32_t peer_uid,
                                                     const protocol::Request& request) const {
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return std::nullopt;
  const Entry& entry = found->second;
  if (entry.peer_uid != peer_uid || entry.user != request.user ||
      entry.type != static_cast<std::uint8_t>(request.type)) {
    return std::nullopt;
  }
  return entry.answer;
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
  insert(id, Entry{peer_uid, request.user, record.type, now, answer});
  return record;
}

void AnsweredEvents::replace(const std::vector<AnsweredEvent>& stored) {
  by_id_.clear();
  order_.clear();
  for (const AnsweredEvent& record : stored) {
    const auto decoded = protocol::decode_answer(record.answer_frame);
    if (!decoded.message) continue;  // written by this code, so never; but never trusted
    insert(record.id,
           Entry{record.peer_uid, record.user, record.type, record.time, *decoded.message});
  }
}

void AnsweredEvents::insert(std::uint64_t id, Entry entry) {
  // A colliding id (another uid's, or a replay) keeps its first entry: the
  // first answer is the one a resend must get.
  const TimePoint time = entry.time;
  if (!by_id_.emplace(id, std::move(entry)).second) return;
  order_.emplace_back(time, id);
  while (order_.size() > kMaxAnsweredEvents) {
    by_id_.erase(order_.front().second);
    order_.pop_front();
  }
}

void AnsweredEvents::forget_old(TimePoint now) {
  while (!order_.empty() && order_.front().first < now - kAnsweredEventRetention) {
    by_id_.erase(order_.front().second);
    order_.pop_front();
  }
}

}  // namespace acctlock
