#include "daemon/lockout_service.h"

namespace acctlock {

StoreBatch PendingWork::to_store_batch() const {
  StoreBatch batch;
  for (const auto& [user, state] : states) {
    if (state) {
      batch.put_states.emplace_back(user, *state);
    } else {
      batch.delete_states.push_back(user);
    }
  }
  batch.history.reserve(events.size());
  for (const auto& event : events) batch.history.push_back(event.entry);
  return batch;
}

LockoutService::LockoutService(const LockoutRules& rules, Store& store)
    : policy_(rules), store_(store) {}

void LockoutService::load_from_store() {
  std::unordered_map<std::string, UserState> states;
  std::set<std::pair<TimePoint, std::string>> expiries;
  for (auto& [user, state] : store_.load_states()) {
    if (auto expiry = policy_.next_expiry(state)) expiries.emplace(*expiry, user);
    states.emplace(std::move(user), std::move(state));
  }
  states_ = std::move(states);
  expiries_ = std::move(expiries);
}

void LockoutService::set_rules(const LockoutRules& rules) {
  policy_ = LockoutPolicy(rules);
}

protocol::Answer LockoutService::answer_for(const LockStatus& status,
                                            const UserState& state) const {
  protocol::Answer answer;
  answer.verdict = status.locked() ? protocol::Verdict::locked : protocol::Verdict::allowed;
  answer.lock = status.kind;
  answer.failures = status.failures;
  answer.level = status.level;
  if (status.until) answer.locked_until = status.until->time_since_epoch().count();
  if (status.kind == LockKind::manual && state.manual_lock) {
    answer.reason = state.manual_lock->reason.substr(0, protocol::kMaxReason);
  }
  return answer;
}

protocol::Answer LockoutService::apply(const protocol::Request& request, bool is_root,
                                       TimePoint now, PendingWork& work) {
  using protocol::MessageType;
  const EventOrigin origin{request.service, request.rhost, request.tty, request.ruser};

  auto found = states_.find(request.user);
  if (found == states_.end()) {
    // Nothing known: a check or a success has nothing to change or record
    // beyond the history line.
    if (request.type != MessageType::failure) {
      if (request.type == MessageType::success) {
        add_event(work, request.user, HistoryEvent::success, origin, UserState{}, now);
      }
      return answer_for(LockStatus{}, UserState{});
    }
    found = states_.emplace(request.user, UserState{}).first;
  }

  UserState& state = found->second;
  const auto old_expiry = policy_.next_expiry(state);
  const UserState before = state;
  if (policy_.settle(state, now)) {
    // The lock ran out on its own; this request only noticed it.
    add_event(work, request.user, HistoryEvent::expired, EventOrigin{}, before, now);
  }

  switch (request.type) {
    case MessageType::failure: {
      const auto outcome = policy_.record_failure(state, is_root, now);
      add_event(work, request.user,
                outcome.locked_now ? HistoryEvent::locked : HistoryEvent::failure, origin, state,
                now, {}, outcome.counted ? std::string() : std::string("while locked"));
      break;
    }
    case MessageType::success: {
      const auto outcome = policy_.record_success(state, now);
      add_event(work, request.user, HistoryEvent::success, origin, state, now, {},
                outcome.ignored_while_locked ? std::string("while locked") : std::string());
      break;
    }
    case MessageType::password_changed:
      if (policy_.lift_failure_lock(state, now)) {
        add_event(work, request.user, HistoryEvent::password_changed, origin, state, now);
      }
      break;
    case MessageType::check:
    case MessageType::answer:
      break;
  }

  const auto status = policy_.status(state, now);
  auto answer = answer_for(status, state);
  if (state != before) stage(request.user, old_expiry, state, now, work);
  return answer;
}

void LockoutService::expire_due(TimePoint now, PendingWork& work) {
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    const std::string user = expiries_.begin()->second;
    auto found = states_.find(user);
    if (found == states_.end()) {
      expiries_.erase(expiries_.begin());
      continue;
    }
    UserState& state = found->second;
    const auto old_expiry = policy_.next_expiry(state);
    const UserState before = state;
    if (policy_.settle(state, now)) {
      add_event(work, user, HistoryEvent::expired, EventOrigin{}, before, now);
    }
    if (state != before) {
      stage(user, old_expiry, state, now, work);
    } else {
      // The policy does not consider it due (rules changed on reload): drop
      // the stale index entry and re-index from the state.
      expiries_.erase(expiries_.begin());
      if (auto expiry = policy_.next_expiry(state); expiry && *expiry > now) {
        expiries_.emplace(*expiry, user);
      }
    }
  }
}

std::optional<TimePoint> LockoutService::next_expiry() const {
  if (expiries_.empty()) return std::nullopt;
  return expiries_.begin()->first;
}

bool LockoutService::unlock(const std::string& user, std::uint32_t admin_uid, TimePoint now,
                            PendingWork& work) {
  auto found = states_.find(user);
  if (found == states_.end()) return false;
  UserState& state = found->second;
  const auto old_expiry = policy_.next_expiry(state);
  const bool was_locked = policy_.status(state, now).locked();
  policy_.unlock(state);
  // The event says what happened to the account, whichever command did it:
  // a consumer watching for lifted locks must see a --reset that lifted one.
  add_event(work, user, was_locked ? HistoryEvent::unlocked : HistoryEvent::reset, EventOrigin{},
            state, now, admin_uid);
  stage(user, old_expiry, state, now, work);
  return true;
}

void LockoutService::lock(const std::string& user, std::string reason, std::uint32_t admin_uid,
                          TimePoint now, PendingWork& work) {
  UserState& state = states_[user];
  const auto old_expiry = policy_.next_expiry(state);
  policy_.lock_manually(state, reason, admin_uid, now);
  add_event(work, user, HistoryEvent::manual_lock, EventOrigin{}, state, now, admin_uid,
            std::move(reason));
  stage(user, old_expiry, state, now, work);
}

std::optional<UserReport> LockoutService::report(const std::string& user, TimePoint now) const {
  const auto found = states_.find(user);
  if (found == states_.end()) return std::nullopt;
  UserState state = found->second;
  policy_.settle(state, now);
  return UserReport{user, policy_.status(state, now), state};
}

std::vector<UserReport> LockoutService::reports(TimePoint now) const {
  std::vector<UserReport> out;
  out.reserve(states_.size());
  for (const auto& [user, stored] : states_) {
    UserState state = stored;
    policy_.settle(state, now);
    out.push_back(UserReport{user, policy_.status(state, now), state});
  }
  return out;
}

LockoutService::LockedCounts LockoutService::locked_counts(TimePoint now) const {
  LockedCounts counts;
  for (const auto& [user, state] : states_) {
    // A cheap test first: most tracked users have failures and no lock.
    if (!state.manual_lock && !state.failure_lock) continue;
    switch (policy_.status(state, now).kind) {
      case LockKind::failures:
        ++counts.failures;
        break;
      case LockKind::permanent:
        ++counts.permanent;
        break;
      case LockKind::manual:
        ++counts.manual;
        break;
      case LockKind::none:
        break;
    }
  }
  return counts;
}

void LockoutService::stage(const std::string& user, const std::optional<TimePoint>& old_expiry,
                           const UserState& state, TimePoint now, PendingWork& work) {
  if (old_expiry) expiries_.erase({*old_expiry, user});
  if (policy_.is_idle(state, now)) {
    work.states.insert_or_assign(user, std::nullopt);
    states_.erase(user);  // `state` refers into the map: nothing may use it after this
    return;
  }
  if (auto expiry = policy_.next_expiry(state)) {
    expiries_.emplace(*expiry, user);
    if (on_new_expiry_) on_new_expiry_(*expiry);
  }
  work.states.insert_or_assign(user, state);
}

void LockoutService::add_event(PendingWork& work, const std::string& user, HistoryEvent event,
                               const EventOrigin& origin, const UserState& state, TimePoint now,
                               std::optional<std::uint32_t> admin_uid, std::string detail) {
  LockEvent record;
  record.entry.time = now;
  record.entry.user = user;
  record.entry.event = event;
  record.entry.service = origin.service;
  record.entry.rhost = origin.rhost;
  record.entry.tty = origin.tty;
  record.entry.ruser = origin.ruser;
  record.entry.admin_uid = admin_uid;
  record.entry.detail = std::move(detail);
  record.failures = state.failures;
  record.level = state.level;
  if (state.failure_lock) record.locked_until = state.failure_lock->until;
  work.events.push_back(std::move(record));
}

}  // namespace acctlock
