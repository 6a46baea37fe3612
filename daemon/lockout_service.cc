// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/lockout_service.h"

#include <limits>
#include <random>

#include "common/user_name.h"

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
  for (const auto& [source, state] : sources) {
    if (state) {
      batch.put_sources.emplace_back(source, *state);
    } else {
      batch.delete_sources.push_back(source);
    }
  }
  batch.history = history;
  batch.answered = answered;
  batch.forget_answered_before = forget_answered_before;
  return batch;
}

namespace {

std::uint64_t random_salt() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

}  // namespace

LockoutService::LockoutService(const LockoutRules& rules, Store& store)
    : policy_(rules), spray_detector_(SprayRules{}, random_salt()), store_(store) {}

void LockoutService::set_spray_rules(const SprayRules& rules) {
  spray_detector_ = SprayDetector(rules, random_salt());
}

void LockoutService::watch_for_spray(const protocol::Request& request,
                                     const std::optional<Source>& source, TimePoint now,
                                     PendingWork& work) {
  const auto figures =
      spray_detector_.record_failure(request.user, source ? source->key : std::string(), now);
  if (!figures) return;
  const std::string detail = "failures for at least " + std::to_string(figures->users) +
                             " users from at least " + std::to_string(figures->sources) +
                             " sources, " + std::to_string(figures->failures) + " failures in " +
                             format_duration(figures->window);
  add_event(work, std::string(), HistoryEvent::spray_suspected, EventOrigin{}, UserState{}, now, {},
            detail);
  work.events.back().failures = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(figures->failures, std::numeric_limits<std::uint32_t>::max()));
  work.events.back().spray = figures;
}

UserState LockoutService::unpack(const StateMap::value_type& entry) const {
  const MemoryState& m = entry.second;
  UserState state;
  state.failures = m.failures;
  state.last_failure = TimePoint(Seconds(m.last_failure));
  state.level = m.level;
  state.last_lock_end = TimePoint(Seconds(m.last_lock_end));
  if (m.failure_lock) {
    FailureLock& lock = state.failure_lock.emplace();
    lock.since = TimePoint(Seconds(m.lock_since));
    if (m.lock_has_end) lock.until = TimePoint(Seconds(m.lock_until));
  }
  if (m.manual_lock) {
    if (const auto found = manual_locks_.find(entry.first); found != manual_locks_.end()) {
      state.manual_lock = found->second;
    }
  }
  if (m.earlier_failures) {
    if (const auto found = earlier_failures_.find(entry.first); found != earlier_failures_.end()) {
      state.earlier_failures = found->second;
    }
  }
  return state;
}

LockoutService::MemoryState LockoutService::pack(const UserState& state) const {
  MemoryState m;
  m.failures = state.failures;
  m.last_failure = state.last_failure.time_since_epoch().count();
  m.level = state.level;
  m.last_lock_end = state.last_lock_end.time_since_epoch().count();
  if (state.failure_lock) {
    m.failure_lock = true;
    m.lock_since = state.failure_lock->since.time_since_epoch().count();
    if (state.failure_lock->until) {
      m.lock_has_end = true;
      m.lock_until = state.failure_lock->until->time_since_epoch().count();
    }
  }
  m.manual_lock = state.manual_lock.has_value();
  m.earlier_failures = !state.earlier_failures.empty();
  return m;
}

void LockoutService::put_in_memory(const std::string& user, const UserState& state,
                                   StateMap::iterator hint) {
  states_.insert_or_assign(hint, user, pack(state));
  if (state.manual_lock) {
    manual_locks_.insert_or_assign(user, *state.manual_lock);
  } else if (const auto found = manual_locks_.find(user); found != manual_locks_.end()) {
    manual_locks_.erase(found);
  }
  if (!state.earlier_failures.empty()) {
    earlier_failures_.insert_or_assign(user, state.earlier_failures);
  } else if (const auto found = earlier_failures_.find(user); found != earlier_failures_.end()) {
    earlier_failures_.erase(found);
  }
  const auto indexed = locked_.find(user);
  if (state.failure_lock || state.manual_lock) {
    if (indexed == locked_.end()) locked_.insert(user);
  } else if (indexed != locked_.end()) {
    locked_.erase(indexed);
  }
}

LockoutService::StateMap::iterator LockoutService::erase_from_memory(StateMap::iterator found) {
  if (found->second.manual_lock) {
    if (const auto manual = manual_locks_.find(found->first); manual != manual_locks_.end()) {
      manual_locks_.erase(manual);
    }
  }
  if (found->second.earlier_failures) {
    if (const auto times = earlier_failures_.find(found->first); times != earlier_failures_.end()) {
      earlier_failures_.erase(times);
    }
  }
  if (found->second.failure_lock || found->second.manual_lock) {
    if (const auto indexed = locked_.find(found->first); indexed != locked_.end()) {
      locked_.erase(indexed);
    }
  }
  return states_.erase(found);
}

void LockoutService::load_from_store() {
  // Built aside and swapped in, so a failed read leaves the running state.
  // The store hands states over one by one, in name order where it can, so
  // each is appended at the end of the tree and memory never holds two
  // copies of a million users.
  LockoutService loaded(policy_.rules(), store_);
  store_.for_each_state([&](std::string user, UserState state) {
    if (auto expiry = policy_.next_expiry(state)) loaded.expiries_.emplace(*expiry, user);
    loaded.put_in_memory(user, state, loaded.states_.end());
  });
  SourceMap sources;
  for (auto& [key, state] : store_.load_sources()) {
    sources.emplace_hint(sources.end(), std::move(key), SourceEntry{std::move(state), {}, false});
  }
  source_expiries_.clear();
  idle_order_.clear();
  blocked_sources_.clear();
  manual_source_keys_.clear();
  manual_prefixes_.clear();
  sources_ = std::move(sources);
  for (auto it = sources_.begin(); it != sources_.end(); ++it) index_source(it);
  source_sweep_cursor_.clear();
  states_ = std::move(loaded.states_);
  manual_locks_ = std::move(loaded.manual_locks_);
  earlier_failures_ = std::move(loaded.earlier_failures_);
  locked_ = std::move(loaded.locked_);
  expiries_ = std::move(loaded.expiries_);
  sweep_cursor_.clear();
  // Ids answered before a failed commit are not in the store: forgetting
  // them here makes their resend count, which is right, since the event was
  // not recorded.
  answered_.replace(store_.load_answered(wall_clock_now() - kAnsweredEventRetention));
  // After a failed commit too: the rows it would have added are not there.
  history_.load(store_.history_usage());
}

void LockoutService::remember_answer(std::uint32_t peer_uid, const protocol::Request& request,
                                     const protocol::Answer& answer, TimePoint now,
                                     PendingWork& work) {
  work.answered.push_back(answered_.remember(request.event_id, peer_uid, request, answer, now));
  work.forget_answered_before = now - kAnsweredEventRetention;
}

void LockoutService::set_rules(const LockoutRules& rules) {
  policy_ = LockoutPolicy(rules);
  if (default_view_) default_view_.emplace(rules, true);
}

void LockoutService::set_service_rules(
    const std::map<std::string, LockoutRules, std::less<>>& rules) {
  service_policies_.clear();
  default_view_.reset();
  if (rules.empty()) return;
  for (const auto& [service, service_rules] : rules) {
    service_policies_.emplace(service, LockoutPolicy(service_rules, true));
  }
  default_view_.emplace(policy_.rules(), true);
}

const LockoutPolicy& LockoutService::policy_for(std::string_view service) const {
  if (const auto found = service_policies_.find(service); found != service_policies_.end()) {
    return found->second;
  }
  return default_view_ ? *default_view_ : policy_;
}

void LockoutService::set_source_rules(const SourceRules& rules, std::size_t max_tracked_sources) {
  source_policy_ = SourcePolicy(rules);
  max_tracked_sources_ = std::max<std::size_t>(max_tracked_sources, 1);
  // Expiries and the blocked index follow the state, which the new rules may
  // read differently (unlock_time is kept in each block's end already).
  for (auto it = sources_.begin(); it != sources_.end(); ++it) unindex_source(it);
  for (auto it = sources_.begin(); it != sources_.end(); ++it) index_source(it);
}

void LockoutService::set_groups(std::string admin_group, std::string exempt_group) {
  admin_group_ = std::move(admin_group);
  exempt_group_ = std::move(exempt_group);
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
                                       TimePoint now, PendingWork& work, bool may_reset,
                                       std::optional<std::uint32_t> peer_uid) {
  using protocol::MessageType;
  const EventOrigin origin{request.service, request.rhost, request.tty, request.ruser, peer_uid};

  // The source rules (issue 11). A failure counts for its source only on
  // root's word: any other peer could name any address as PAM_RHOST and get
  // it blocked for everyone. A block refuses every peer's attempt.
  const std::optional<Source> source =
      normalise_source(request.rhost, request.ruser, source_policy_.rules().prefix_v6);
  if (source && may_reset && request.type == MessageType::failure) {
    record_source_failure(*source, request, origin, now, work);
  }
  // On root's word only, like a source's count: a user's own process could
  // name any address and any user.
  if (may_reset && request.type == MessageType::failure) {
    watch_for_spray(request, source, now, work);
  }
  const auto [source_lock, blocking_key] =
      source ? source_status(*source, now) : std::pair<LockStatus, std::string>{};
  // The user's own lock says more (and outlasts an unblock): it comes first.
  const auto combined = [&](protocol::Answer user_answer) {
    if (user_answer.verdict == protocol::Verdict::locked || !source_lock.locked()) {
      return user_answer;
    }
    return source_answer(blocking_key, source_lock);
  };

  // A right password from a blocked source is refused all the same (the
  // module saw the block at preauth): it is not a login, so it resets
  // nothing, and the history says so.
  const char* const refused_success_detail =
      !may_reset             ? "reported by the user's own process: resets nothing"
      : source_lock.locked() ? "while the source was blocked: resets nothing"
                             : nullptr;

  // A name NSS does not know: counted for its source above, and nothing
  // else, so that a spray of invented names creates no user state.
  if (request.user_unknown) return combined(answer_for(LockStatus{}, UserState{}));

  const auto found = states_.find(request.user);
  if (found == states_.end() && request.type != MessageType::failure) {
    // Nothing known: a check or a success has nothing to change or record
    // beyond the history line.
    if (request.type == MessageType::success) {
      add_event(work, request.user, HistoryEvent::success, origin, UserState{}, now, {},
                refused_success_detail ? refused_success_detail : std::string());
    }
    return combined(answer_for(LockStatus{}, UserState{}));
  }

  // Worked on as a copy and written back by stage() only when it changed:
  // a request that changes nothing (root's failure without even_deny_root)
  // leaves nothing behind.
  UserState state = found == states_.end() ? UserState{} : unpack(*found);
  const auto old_expiry = policy_.next_expiry(state);
  const UserState before = state;
  // The request is judged by its service's rule (the global one without a
  // [service] section for it): window, deny, the lock's length, its view of
  // a lock another rule set.
  const LockoutPolicy& rule = policy_for(request.service);
  if (rule.settle(state, now)) {
    // The lock ran out on its own; this request only noticed it.
    add_event(work, request.user, HistoryEvent::expired, EventOrigin{}, before, now);
  }

  switch (request.type) {
    case MessageType::failure: {
      bool treated_like_root = is_root;
      bool never_lock = false;
      if (rule.failure_would_lock(state, now)) {
        never_lock = in_group(request.user, exempt_group_);
        treated_like_root = treated_like_root || in_group(request.user, admin_group_);
      }
      const auto outcome = rule.record_failure(state, treated_like_root, now, never_lock);
      add_event(work, request.user,
                outcome.locked_now ? HistoryEvent::locked : HistoryEvent::failure, origin, state,
                now, {}, outcome.counted ? std::string() : std::string("while locked"));
      break;
    }
    case MessageType::success: {
      if (refused_success_detail) {
        add_event(work, request.user, HistoryEvent::success, origin, state, now, {},
                  refused_success_detail);
        break;
      }
      const auto outcome = rule.record_success(state, now);
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

  const auto status = rule.verdict(state, now);
  auto answer = answer_for(status, state);
  if (state != before) stage(request.user, old_expiry, state, now, work);
  return combined(std::move(answer));
}

void LockoutService::expire_due(TimePoint now, PendingWork& work) {
  while (!source_expiries_.empty() && source_expiries_.begin()->first <= now) {
    const std::string key = source_expiries_.begin()->second;
    const auto found = sources_.find(key);
    if (found == sources_.end()) {
      source_expiries_.erase(source_expiries_.begin());
      continue;
    }
    UserState state = found->second.state;
    const UserState before = state;
    if (source_policy_.settle(state, now)) {
      add_source_event(work, HistoryEvent::source_expired, key, std::string(), EventOrigin{},
                       before, now);
    }
    if (state != before) {
      stage_source(key, state, now, work);
    } else {
      // Not due under the current rules: re-index from the state.
      unindex_source(found);
      found->second.expiry.reset();
      const auto expiry = source_policy_.next_expiry(state);
      if (expiry && *expiry > now) index_source(found);
    }
  }
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    const std::string user = expiries_.begin()->second;
    const auto found = states_.find(user);
    if (found == states_.end()) {
      expiries_.erase(expiries_.begin());
      continue;
    }
    UserState state = unpack(*found);
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
  std::optional<TimePoint> next;
  if (!expiries_.empty()) next = expiries_.begin()->first;
  if (!source_expiries_.empty() && (!next || source_expiries_.begin()->first < *next)) {
    next = source_expiries_.begin()->first;
  }
  return next;
}

bool LockoutService::unlock(const std::string& user, std::uint32_t admin_uid, TimePoint now,
                            PendingWork& work) {
  const auto found = states_.find(user);
  if (found == states_.end()) return false;
  UserState state = unpack(*found);
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
                          TimePoint now, PendingWork& work, std::optional<Seconds> duration) {
  const auto found = states_.find(user);
  UserState state = found == states_.end() ? UserState{} : unpack(*found);
  const auto old_expiry = policy_.next_expiry(state);
  policy_.lock_manually(state, reason, admin_uid, now, duration);
  // The history keeps the reason; a timed lock says for how long.
  std::string detail = std::move(reason);
  if (duration) {
    const std::string span = "for " + format_duration(*duration);
    detail = detail.empty() ? span : detail + " (" + span + ")";
  }
  add_event(work, user, HistoryEvent::manual_lock, EventOrigin{}, state, now, admin_uid,
            std::move(detail));
  stage(user, old_expiry, state, now, work);
}

void LockoutService::import_failure(const std::string& user, bool is_root, TimePoint when,
                                    const EventOrigin& origin, bool valid, std::uint32_t admin_uid,
                                    TimePoint /*now*/, PendingWork& work) {
  std::string detail = "imported from pam_faillock";
  if (!valid) detail += " (no longer counted there)";
  if (!valid) {
    add_event(work, user, HistoryEvent::failure, origin, UserState{}, when, admin_uid,
              std::move(detail));
    return;
  }
  const auto found = states_.find(user);
  UserState state = found == states_.end() ? UserState{} : unpack(*found);
  const auto old_expiry = policy_.next_expiry(state);
  const auto outcome = policy_.record_failure(state, is_root, when);
  add_event(work, user, outcome.locked_now ? HistoryEvent::locked : HistoryEvent::failure, origin,
            state, when, admin_uid, std::move(detail));
  // Idle as of the record's own time, not of now: a record that has aged
  // out by now still counts for the user's next, newer record (chained, or
  // sliding with deny failures close together). What stays idle, the sweep
  // removes.
  stage(user, old_expiry, state, when, work);
}

std::optional<UserReport> LockoutService::report(const std::string& user, TimePoint now) const {
  const auto found = states_.find(user);
  if (found == states_.end()) return std::nullopt;
  UserState state = unpack(*found);
  policy_.settle(state, now);
  return UserReport{user, policy_.status(state, now), state};
}

std::vector<UserReport> LockoutService::page(std::string_view after, std::size_t limit,
                                             bool locked_only, TimePoint now) const {
  std::vector<UserReport> out;
  const auto add = [&](const StateMap::value_type& entry) {
    UserState state = unpack(entry);
    policy_.settle(state, now);
    const LockStatus status = policy_.status(state, now);
    if (locked_only && !status.locked()) return;
    out.push_back(UserReport{entry.first, status, std::move(state)});
  };
  if (locked_only) {
    for (auto it = locked_.upper_bound(after); it != locked_.end() && out.size() < limit; ++it) {
      if (const auto found = states_.find(*it); found != states_.end()) add(*found);
    }
  } else {
    for (auto it = states_.upper_bound(after); it != states_.end() && out.size() < limit; ++it) {
      add(*it);
    }
  }
  return out;
}

std::vector<std::string> LockoutService::locked_names(std::size_t limit) const {
  std::vector<std::string> names;
  for (auto it = locked_.begin(); it != locked_.end() && names.size() < limit; ++it) {
    names.push_back(*it);
  }
  return names;
}

LockoutService::SweepProgress LockoutService::sweep_slice(TimePoint now, std::size_t budget,
                                                          PendingWork& work) {
  SweepProgress progress;
  auto it = states_.lower_bound(sweep_cursor_);
  while (it != states_.end() && progress.examined < budget) {
    ++progress.examined;
    const MemoryState& m = it->second;
    // A lock is never swept: its end is the expiry timer's to announce.
    if (!m.failure_lock && !m.manual_lock && idle_under_every_rule(unpack(*it), now)) {
      work.states.insert_or_assign(it->first, std::nullopt);
      it = erase_from_memory(it);
      ++progress.removed;
      continue;
    }
    ++it;
  }
  if (it == states_.end()) {
    sweep_cursor_.clear();
    progress.pass_done = true;
  } else {
    sweep_cursor_ = it->first;
  }

  // The sources, with a budget and a cursor of their own: a flood of
  // addresses leaves the table once source_fail_interval has passed.
  std::size_t source_budget = budget;
  auto source = sources_.lower_bound(source_sweep_cursor_);
  while (source != sources_.end() && source_budget > 0) {
    --source_budget;
    ++progress.examined;
    if (!source->second.blocked && source_policy_.is_idle(source->second.state, now)) {
      work.sources.insert_or_assign(source->first, std::nullopt);
      unindex_source(source);
      source = sources_.erase(source);
      ++progress.removed;
      continue;
    }
    ++source;
  }
  if (source == sources_.end()) {
    source_sweep_cursor_.clear();
  } else {
    source_sweep_cursor_ = source->first;
  }
  return progress;
}

LockoutService::LockedCounts LockoutService::locked_counts(TimePoint now) const {
  LockedCounts counts;
  // The locked index, not every tracked user: a scrape during a spray of a
  // million names costs the number of locked accounts.
  for (const auto& user : locked_) {
    const auto found = states_.find(user);
    if (found == states_.end()) continue;
    switch (policy_.status(unpack(*found), now).kind) {
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
      case LockKind::source:  // a user's state never reads as a source block
        break;
    }
  }
  return counts;
}

bool LockoutService::idle_under_every_rule(const UserState& state, TimePoint now) const {
  // A count one service's longer fail_interval (or a progression its longer
  // lockout_memory) still needs is kept.
  if (!policy_.is_idle(state, now)) return false;
  for (const auto& [service, policy] : service_policies_) {
    if (!policy.is_idle(state, now)) return false;
  }
  return true;
}

void LockoutService::stage(const std::string& user, const std::optional<TimePoint>& old_expiry,
                           const UserState& state, TimePoint now, PendingWork& work) {
  if (old_expiry) expiries_.erase({*old_expiry, user});
  const auto found = states_.find(user);
  if (idle_under_every_rule(state, now)) {
    work.states.insert_or_assign(user, std::nullopt);
    if (found != states_.end()) erase_from_memory(found);
    return;
  }
  if (auto expiry = policy_.next_expiry(state)) {
    expiries_.emplace(*expiry, user);
    if (on_new_expiry_) on_new_expiry_(*expiry);
  }
  put_in_memory(user, state, found);
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
  record.entry.peer_uid = origin.peer_uid;
  HistoryEntry& row = work.history.emplace_back(record.entry);
  history_.admit(row);
  record.failures = state.failures;
  record.level = state.level;
  if (state.failure_lock) record.locked_until = state.failure_lock->until;
  work.events.push_back(std::move(record));
}

std::pair<LockStatus, std::string> LockoutService::source_status(const Source& source,
                                                                 TimePoint now) const {
  LockStatus status;
  if (const auto found = sources_.find(source.key); found != sources_.end()) {
    UserState state = found->second.state;
    source_policy_.settle(state, now);
    status = source_policy_.status(source, state, now);
    if (status.kind == LockKind::manual) status.failures = 0;
  }
  if (status.kind == LockKind::manual || manual_prefixes_.empty() || !source.address) {
    return {status, source.key};
  }
  // An admin's prefix block wins over a block by failures: it has no end.
  const auto covering = manual_block_covering(source, now);
  if (!covering || *covering == source.key) return {status, source.key};
  const auto block = sources_.find(*covering);
  LockStatus manual;
  manual.kind = LockKind::manual;
  if (block != sources_.end() && block->second.state.manual_lock) {
    manual.until = block->second.state.manual_lock->until;
  }
  return {manual, *covering};
}

std::optional<std::string> LockoutService::manual_block_covering(const Source& source,
                                                                 TimePoint now,
                                                                 unsigned max_length) const {
  const auto in_force = [&](const std::string& key) {
    const auto found = sources_.find(key);
    if (found == sources_.end() || !found->second.state.manual_lock) return false;
    const auto& until = found->second.state.manual_lock->until;
    return !until || now <= *until;  // in force through its `until` second
  };
  if (manual_source_keys_.contains(source.key) && in_force(source.key)) return source.key;
  if (!source.address) return std::nullopt;
  // Longest prefix first: the most specific block names the source best.
  for (auto it = manual_prefixes_.rbegin(); it != manual_prefixes_.rend(); ++it) {
    const auto& [family, networks] = *it;
    if (family.first != source.address->is_v6 || family.second > max_length) continue;
    const IpAddress network = mask_address(*source.address, family.second);
    const auto found = networks.find(network.bytes);
    if (found != networks.end() && in_force(found->second)) return found->second;
  }
  return std::nullopt;
}

void LockoutService::lock_source(const std::string& key, std::string reason,
                                 std::uint32_t admin_uid, TimePoint now, PendingWork& work,
                                 std::optional<Seconds> duration) {
  const auto found = sources_.find(key);
  UserState state = found == sources_.end() ? UserState{} : found->second.state;
  source_policy_.lock_manually(state, reason, admin_uid, now, duration);
  EventOrigin origin;
  add_source_event(work, HistoryEvent::source_blocked, key, std::string(), origin, state, now,
                   admin_uid);
  // The journal says why; the history row names the source in `detail`.
  work.events.back().reason = std::move(reason);
  work.events.back().failures = 0;
  work.events.back().locked_until = duration ? state.manual_lock->until : std::nullopt;
  stage_source(key, state, now, work);
}

protocol::Answer LockoutService::source_answer(const std::string& key,
                                               const LockStatus& status) const {
  protocol::Answer answer;
  answer.verdict = protocol::Verdict::locked;
  answer.lock = LockKind::source;
  answer.failures = status.failures;
  answer.level = status.level;
  if (status.until) answer.locked_until = status.until->time_since_epoch().count();
  answer.reason = key.substr(0, protocol::kMaxReason);
  return answer;
}

void LockoutService::record_source_failure(const Source& source, const protocol::Request& request,
                                           const EventOrigin& origin, TimePoint now,
                                           PendingWork& work) {
  if (!source_policy_.may_block(source)) return;
  const auto found = sources_.find(source.key);
  UserState state = found == sources_.end() ? UserState{} : found->second.state;
  const UserState before = state;
  const SourceFailureOutcome outcome = source_policy_.record_failure(source, state, now);
  if (outcome.block_expired) {
    add_source_event(work, HistoryEvent::source_expired, source.key, std::string(), EventOrigin{},
                     before, now);
  }
  if (outcome.blocked_now) {
    add_source_event(work, HistoryEvent::source_blocked, source.key, request.user, origin, state,
                     now);
  }
  if (state != before) stage_source(source.key, state, now, work);
}

void LockoutService::index_source(SourceMap::iterator entry) {
  SourceEntry& e = entry->second;
  e.expiry = source_policy_.next_expiry(e.state);
  if (e.expiry) {
    source_expiries_.emplace(*e.expiry, entry->first);
    if (on_new_expiry_) on_new_expiry_(*e.expiry);
  }
  e.blocked = e.state.failure_lock.has_value() || e.state.manual_lock.has_value();
  if (e.blocked) {
    blocked_sources_.insert(entry->first);
  } else {
    idle_order_.emplace(e.state.last_failure, entry->first);
  }
  e.manual = e.state.manual_lock.has_value();
  if (e.manual) {
    manual_source_keys_.insert(entry->first);
    if (const auto prefix = parse_address_prefix(entry->first, nullptr)) {
      manual_prefixes_[{prefix->network.is_v6, prefix->length}].emplace(prefix->network.bytes,
                                                                        entry->first);
    }
  }
}

void LockoutService::unindex_source(SourceMap::iterator entry) {
  SourceEntry& e = entry->second;
  if (e.expiry) source_expiries_.erase({*e.expiry, entry->first});
  if (e.blocked) {
    blocked_sources_.erase(entry->first);
  } else {
    idle_order_.erase({e.state.last_failure, entry->first});
  }
  if (e.manual) {
    manual_source_keys_.erase(entry->first);
    if (const auto prefix = parse_address_prefix(entry->first, nullptr)) {
      const auto family = manual_prefixes_.find({prefix->network.is_v6, prefix->length});
      if (family != manual_prefixes_.end()) {
        family->second.erase(prefix->network.bytes);
        if (family->second.empty()) manual_prefixes_.erase(family);
      }
    }
    e.manual = false;
  }
}

void LockoutService::stage_source(const std::string& key, const UserState& state, TimePoint now,
                                  PendingWork& work) {
  auto found = sources_.find(key);
  if (found != sources_.end()) unindex_source(found);
  if (source_policy_.is_idle(state, now)) {
    work.sources.insert_or_assign(key, std::nullopt);
    if (found != sources_.end()) sources_.erase(found);
    return;
  }
  if (found == sources_.end()) {
    found = sources_.emplace(key, SourceEntry{state, {}, false}).first;
  } else {
    found->second.state = state;
  }
  index_source(found);
  work.sources.insert_or_assign(key, state);
  while (sources_.size() > max_tracked_sources_) {
    if (!evict_one_source(key, work)) {
      // Every other source is blocked until an admin lifts it: the newcomer
      // is the one not kept. Its failures still count for its users.
      const auto newcomer = sources_.find(key);
      unindex_source(newcomer);
      sources_.erase(newcomer);
      work.sources.insert_or_assign(key, std::nullopt);
      ++evicted_sources_;
      return;
    }
  }
}

bool LockoutService::evict_one_source(std::string_view keep, PendingWork& work) {
  std::string victim;
  for (const auto& [time, key] : idle_order_) {
    if (key != keep) {
      victim = key;
      break;
    }
  }
  if (victim.empty()) {
    // Only blocks are left: the one that ends first goes first. An admin's
    // block is never dropped: the admin command bounds their number.
    for (const auto& [time, key] : source_expiries_) {
      if (key != keep && !manual_source_keys_.contains(key)) {
        victim = key;
        break;
      }
    }
  }
  if (victim.empty()) return false;
  const auto found = sources_.find(victim);
  unindex_source(found);
  sources_.erase(found);
  work.sources.insert_or_assign(victim, std::nullopt);
  ++evicted_sources_;
  return true;
}

void LockoutService::add_source_event(PendingWork& work, HistoryEvent event, const std::string& key,
                                      const std::string& user, const EventOrigin& origin,
                                      const UserState& state, TimePoint now,
                                      std::optional<std::uint32_t> admin_uid) {
  // The user of the failure that blocked the source may be a name NSS does
  // not know, chosen by the attacker: kept only when it is a valid name.
  add_event(work, is_valid_user_name(user) ? user : std::string(), event, origin, state, now,
            admin_uid, key);
}

std::optional<SourceReport> LockoutService::source_report(const std::string& source,
                                                          TimePoint now) const {
  const auto found = sources_.find(source);
  if (found == sources_.end()) return std::nullopt;
  UserState state = found->second.state;
  source_policy_.settle(state, now);
  Source as_source;
  as_source.kind = Source::Kind::host;  // status() reads the kind only for the console
  as_source.key = source;
  // Trusted addresses read as not blocked by failures, as at an attempt.
  if (const auto parsed = normalise_source(source.substr(0, source.find('/')), std::string(),
                                           source_policy_.rules().prefix_v6)) {
    if (parsed->address) as_source.address = parsed->address;
  }
  return SourceReport{source, source_policy_.status(as_source, state, now), std::move(state)};
}

std::vector<SourceReport> LockoutService::source_page(std::string_view after, std::size_t limit,
                                                      bool blocked_only, TimePoint now) const {
  std::vector<SourceReport> out;
  const auto add = [&](const std::string& key) {
    auto report = source_report(key, now);
    if (!report || (blocked_only && !report->status.locked())) return;
    out.push_back(std::move(*report));
  };
  if (blocked_only) {
    for (auto it = blocked_sources_.upper_bound(after);
         it != blocked_sources_.end() && out.size() < limit; ++it) {
      add(*it);
    }
  } else {
    for (auto it = sources_.upper_bound(after); it != sources_.end() && out.size() < limit; ++it) {
      add(it->first);
    }
  }
  return out;
}

bool LockoutService::unlock_source(const std::string& source, std::uint32_t admin_uid,
                                   TimePoint now, PendingWork& work) {
  const auto found = sources_.find(source);
  if (found == sources_.end()) return false;
  UserState state = found->second.state;
  source_policy_.unlock(state);
  add_source_event(work, HistoryEvent::source_unlocked, source, std::string(), EventOrigin{}, state,
                   now, admin_uid);
  stage_source(source, state, now, work);
  return true;
}

}  // namespace acctlock
