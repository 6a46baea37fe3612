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
  for (const auto& [user, state] : unfamiliar) {
    if (state) {
      batch.put_unfamiliar_states.emplace_back(user, *state);
    } else {
      batch.delete_unfamiliar_states.push_back(user);
    }
  }
  for (const auto& [user, list] : familiar) batch.put_familiar_sources.emplace_back(user, list);
  batch.merge_states = state_merges;
  batch.merge_sources = source_merges;
  batch.merge_unfamiliar_states = unfamiliar_merges;
  batch.replayable = replayable;
  batch.history = history;
  batch.answered = answered;
  batch.forget_answered_before = forget_answered_before;
  return batch;
}

StoreBatch PendingWork::take_store_batch() {
  std::vector<HistoryEntry> moved_history = std::move(history);
  std::vector<AnsweredEvent> moved_answered = std::move(answered);
  history.clear();
  answered.clear();
  StoreBatch batch = to_store_batch();
  batch.history = std::move(moved_history);
  batch.answered = std::move(moved_answered);
  return batch;
}

namespace {

std::uint64_t random_salt() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

}  // namespace

LockoutService::LockoutService(const LockoutRules& rules, Store& store)
    : policy_(rules),
      spray_detector_(SprayRules{}, random_salt()),
      store_(store),
      record_changes_(store.shared()) {}

void LockoutService::note_replayable(PendingWork& work, ReplayableEvent::Kind kind, TimePoint now,
                                     const std::string& key, const std::string& reason,
                                     std::uint32_t admin_uid,
                                     std::optional<Seconds> duration) const {
  if (!record_changes_) return;
  ReplayableEvent& replayable = work.replayable.emplace_back();
  replayable.kind = kind;
  replayable.time = now;
  replayable.key = key;
  replayable.reason = reason;
  replayable.admin_uid = admin_uid;
  replayable.duration = duration;
}

void LockoutService::replay(const ReplayableEvent& event, PendingWork& work) {
  switch (event.kind) {
    case ReplayableEvent::Kind::request:
      apply(event.request, event.is_root, event.time, work, event.may_reset, event.peer_uid);
      break;
    case ReplayableEvent::Kind::lock:
      lock(event.key, event.reason, event.admin_uid, event.time, work, event.duration);
      break;
    case ReplayableEvent::Kind::unlock:
      unlock(event.key, event.admin_uid, event.time, work);
      break;
    case ReplayableEvent::Kind::lock_source:
      lock_source(event.key, event.reason, event.admin_uid, event.time, work, event.duration);
      break;
    case ReplayableEvent::Kind::unlock_source:
      unlock_source(event.key, event.admin_uid, event.time, work);
      break;
  }
}

void LockoutService::note_merge(std::map<std::string, StateMerge>& merges, const std::string& key,
                                const UserState& result, std::vector<StateChange> steps,
                                std::optional<FailureStep> failure) const {
  if (!record_changes_) return;
  StateMerge& merge = merges[key];
  if (failure) {
    failure->change += merge.changes.size();
    merge.failures.push_back(std::move(*failure));
  }
  for (auto& step : steps) merge.changes.push_back(std::move(step));
  merge.result = result;
}

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
  reindex_locked(user);
}

void LockoutService::reindex_locked(const std::string& user) {
  bool locked = false;
  if (const auto found = states_.find(user); found != states_.end()) {
    locked = found->second.failure_lock || found->second.manual_lock;
  }
  if (const auto found = unfamiliar_.find(user); found != unfamiliar_.end()) {
    locked = locked || found->second.failure_lock.has_value();
  }
  const auto indexed = locked_.find(user);
  if (locked) {
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
  if (const auto unfamiliar = unfamiliar_.find(found->first); unfamiliar != unfamiliar_.end()) {
    if (const auto expiry = policy_.next_expiry(unfamiliar->second)) {
      unfamiliar_expiries_.erase({*expiry, found->first});
    }
    unfamiliar_.erase(unfamiliar);
  }
  if (const auto familiar = familiar_.find(found->first); familiar != familiar_.end()) {
    familiar_.erase(familiar);
  }
  if (const auto indexed = locked_.find(found->first); indexed != locked_.end()) {
    locked_.erase(indexed);
  }
  return states_.erase(found);
}

void LockoutService::load_from_store() {
  // Built aside and swapped in, so a failed read leaves the running state.
  // The store hands states over one by one, in name order where it can, so
  // each is appended at the end of the tree and memory never holds two
  // copies of a million users.
  LockoutService loaded(policy_.rules(), store_);
  // The extras first, so that put_in_memory() indexes a user locked for
  // unfamiliar sources only.
  for (auto& [user, state] : store_.load_unfamiliar_states()) {
    if (auto expiry = policy_.next_expiry(state))
      loaded.unfamiliar_expiries_.emplace(*expiry, user);
    loaded.unfamiliar_.emplace_hint(loaded.unfamiliar_.end(), std::move(user), std::move(state));
  }
  for (auto& [user, sources] : store_.load_familiar_sources()) {
    loaded.familiar_.emplace_hint(loaded.familiar_.end(), std::move(user), std::move(sources));
  }
  store_.for_each_state([&](std::string user, UserState state) {
    if (auto expiry = policy_.next_expiry(state)) loaded.expiries_.emplace(*expiry, user);
    loaded.put_in_memory(user, state, loaded.states_.end());
  });
  // Extras without a user_state row (written by hand, or by a daemon that
  // stopped between... never in one batch, but a row is cheap): the user
  // gets an idle main state, so that pages and the sweep find them.
  const auto add_missing = [&](const std::string& user) {
    if (loaded.states_.find(user) == loaded.states_.end()) {
      loaded.put_in_memory(user, UserState{}, loaded.states_.end());
    }
  };
  for (const auto& [user, state] : loaded.unfamiliar_) add_missing(user);
  for (const auto& [user, sources] : loaded.familiar_) add_missing(user);
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
  unfamiliar_ = std::move(loaded.unfamiliar_);
  unfamiliar_expiries_ = std::move(loaded.unfamiliar_expiries_);
  familiar_ = std::move(loaded.familiar_);
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

void LockoutService::set_familiar_rules(const FamiliarSourceRules& rules) {
  familiar_policy_ = FamiliarSourcePolicy(rules);
}

UserState LockoutService::unfamiliar_of(std::string_view user) const {
  const auto found = unfamiliar_.find(user);
  return found == unfamiliar_.end() ? UserState{} : found->second;
}

std::vector<FamiliarSource> LockoutService::familiar_of(std::string_view user) const {
  const auto found = familiar_.find(user);
  return found == familiar_.end() ? std::vector<FamiliarSource>{} : found->second;
}

UserScope LockoutService::scope_of(const std::optional<Source>& source, const std::string& user,
                                   TimePoint now) const {
  const LockoutScope mode = familiar_policy_.rules().scope;
  if (mode == LockoutScope::account) return UserScope::account;
  // An attempt without a usable source (an rhost that is no name) is never
  // from a familiar one.
  bool familiar = false;
  if (source) {
    if (const auto found = familiar_.find(user); found != familiar_.end()) {
      familiar = familiar_policy_.is_familiar(found->second, source->key, now);
    }
  }
  return user_scope_for(mode, familiar);
}

void LockoutService::stage_unfamiliar(const std::string& user, const UserState& state,
                                      TimePoint now, PendingWork& work,
                                      std::vector<StateChange> steps,
                                      std::optional<FailureStep> failure) {
  note_merge(work.unfamiliar_merges, user, state, std::move(steps), std::move(failure));
  const auto found = unfamiliar_.find(user);
  if (found != unfamiliar_.end()) {
    if (const auto expiry = policy_.next_expiry(found->second)) {
      unfamiliar_expiries_.erase({*expiry, user});
    }
  }
  if (!state.failure_lock && idle_under_every_rule(state, now)) {
    if (found != unfamiliar_.end()) {
      unfamiliar_.erase(found);
      work.unfamiliar.insert_or_assign(user, std::nullopt);
    }
  } else {
    unfamiliar_.insert_or_assign(found, user, state);
    work.unfamiliar.insert_or_assign(user, state);
    if (const auto expiry = policy_.next_expiry(state)) {
      unfamiliar_expiries_.emplace(*expiry, user);
      if (on_new_expiry_) on_new_expiry_(*expiry);
    }
  }
  reindex_locked(user);
}

void LockoutService::stage_familiar(const std::string& user,
                                    const std::vector<FamiliarSource>& sources, PendingWork& work) {
  const auto found = familiar_.find(user);
  if (sources.empty()) {
    if (found == familiar_.end()) return;
    familiar_.erase(found);
  } else {
    familiar_.insert_or_assign(found, user, sources);
  }
  work.familiar.insert_or_assign(user, sources);
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
  if (record_changes_ && request.type != MessageType::check &&
      request.type != MessageType::answer) {
    ReplayableEvent& replayable = work.replayable.emplace_back();
    replayable.time = now;
    replayable.request = request;
    replayable.is_root = is_root;
    replayable.may_reset = may_reset;
    replayable.peer_uid = peer_uid;
  }

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
  // Named references rather than a structured binding: the lambda below
  // captures them, which clang (the fuzz build) does not accept of bindings.
  const std::pair<LockStatus, std::string> source_found =
      source ? source_status(*source, now) : std::pair<LockStatus, std::string>{};
  const LockStatus& source_lock = source_found.first;
  const std::string& blocking_key = source_found.second;
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

  // The source makes the attempt familiar or not (lockout_scope =
  // unfamiliar); a success reported by root makes it familiar for the next.
  const UserScope scope = scope_of(source, request.user, now);
  const bool scoped = scope != UserScope::account;
  // Sources are remembered only while lockout_scope = unfamiliar: with
  // `account` they would decide nothing, and every login would write.
  // Nor does a success from a blocked source: it is refused, not a login.
  const bool remembers_source = source && may_reset && !source_lock.locked() &&
                                request.type == MessageType::success &&
                                familiar_policy_.rules().scope == LockoutScope::unfamiliar;

  const auto found = states_.find(request.user);
  if (found == states_.end() && request.type != MessageType::failure && !remembers_source) {
    // Nothing known: a check or a success has nothing to change or record
    // beyond the history line.
    if (request.type == MessageType::success) {
      add_event(work, request.user, HistoryEvent::success, origin, UserState{}, now, {},
                refused_success_detail ? refused_success_detail : std::string());
    }
    return combined(answer_for(LockStatus{}, UserState{}));
  }

  // Worked on as copies and written back by stage() only when they changed:
  // a request that changes nothing (root's failure without even_deny_root)
  // leaves nothing behind. `state` is the account's (or, scoped, the
  // familiar sources') and holds the manual lock; `unfamiliar` is the state
  // of attempts from elsewhere.
  UserState state = found == states_.end() ? UserState{} : unpack(*found);
  UserState unfamiliar = unfamiliar_of(request.user);
  std::vector<FamiliarSource> familiar = familiar_of(request.user);
  const auto old_expiry = policy_.next_expiry(state);
  const UserState before = state;
  const UserState unfamiliar_before = unfamiliar;
  const std::vector<FamiliarSource> familiar_before = familiar;
  // The events of this request name the scope they concern.
  const auto with_scope = [&](UserScope event_scope) {
    if (scoped) work.events.back().scope = std::string(to_string(event_scope));
  };
  const auto scope_detail = [&](UserScope event_scope, std::string detail) {
    if (!scoped) return detail;
    const std::string text = "scope " + std::string(to_string(event_scope));
    return detail.empty() ? text : detail + "; " + text;
  };
  // The request is judged by its service's rule (the global one without a
  // [service] section for it): window, deny, the lock's length, its view of
  // a lock another rule set.
  const LockoutPolicy& rule = policy_for(request.service);
  // For a shared store: the steps below, each with a copy of its rule.
  std::vector<StateChange> state_steps;
  std::vector<StateChange> unfamiliar_steps;
  std::optional<FailureStep> failure_step;  // of the counted scope's steps
  if (record_changes_) {
    state_steps.push_back([rule, now](UserState& s) { rule.settle(s, now); });
    unfamiliar_steps.push_back([rule, now](UserState& s) { rule.settle(s, now); });
  }
  if (rule.settle(state, now)) {
    // The lock ran out on its own; this request only noticed it.
    add_event(work, request.user, HistoryEvent::expired, EventOrigin{}, before, now, {},
              scope_detail(scoped ? UserScope::familiar : UserScope::account, {}));
    with_scope(UserScope::familiar);
  }
  if (rule.settle(unfamiliar, now)) {
    add_event(work, request.user, HistoryEvent::expired, EventOrigin{}, unfamiliar_before, now, {},
              "scope unfamiliar");
    work.events.back().scope = "unfamiliar";
  }
  // The failure state this attempt counts in.
  UserState& counted = scope == UserScope::unfamiliar ? unfamiliar : state;
  std::vector<StateChange>& counted_steps =
      scope == UserScope::unfamiliar ? unfamiliar_steps : state_steps;

  switch (request.type) {
    case MessageType::failure: {
      if (&counted != &state && state.manual_lock) {
        // An admin's lock covers every scope: nothing more to count.
        add_event(work, request.user, HistoryEvent::failure, origin, counted, now, {},
                  scope_detail(scope, "while locked"));
        with_scope(scope);
        break;
      }
      bool treated_like_root = is_root;
      bool never_lock = false;
      if (rule.failure_would_lock(counted, now)) {
        never_lock = in_group(request.user, exempt_group_);
        treated_like_root = treated_like_root || in_group(request.user, admin_group_);
      }
      const auto outcome = rule.record_failure(counted, treated_like_root, now, never_lock);
      if (record_changes_) {
        counted_steps.push_back([rule, treated_like_root, now, never_lock](UserState& s) {
          rule.record_failure(s, treated_like_root, now, never_lock);
        });
      }
      add_event(work, request.user,
                outcome.locked_now ? HistoryEvent::locked : HistoryEvent::failure, origin, counted,
                now, {},
                scope_detail(scope, outcome.counted ? std::string() : std::string("while locked")));
      with_scope(scope);
      if (record_changes_) {
        // Whether it locks is the fleet's row's to say (MergedFailure).
        failure_step = FailureStep{counted_steps.size() - 1, work.events.size() - 1,
                                   scope_detail(scope, std::string()),
                                   scope_detail(scope, "while locked")};
      }
      break;
    }
    case MessageType::success: {
      if (refused_success_detail) {
        add_event(work, request.user, HistoryEvent::success, origin, counted, now, {},
                  scope_detail(scope, refused_success_detail));
        with_scope(scope);
        break;
      }
      if (&counted != &state && state.manual_lock) {
        add_event(work, request.user, HistoryEvent::success, origin, counted, now, {},
                  scope_detail(scope, "while locked"));
        with_scope(scope);
        break;
      }
      const auto outcome = rule.record_success(counted, now);
      if (record_changes_) {
        counted_steps.push_back([rule, now](UserState& s) { rule.record_success(s, now); });
      }
      add_event(work, request.user, HistoryEvent::success, origin, counted, now, {},
                scope_detail(scope, outcome.ignored_while_locked ? std::string("while locked")
                                                                 : std::string()));
      with_scope(scope);
      // Only root's word makes a source familiar (remembers_source needs
      // may_reset): any local user can name any rhost in a report about
      // their own account, and a source they made familiar would escape the
      // unfamiliar lock an attacker there caused. A success while the
      // attempt's scope is locked changes nothing, here too.
      if (remembers_source && !outcome.ignored_while_locked) {
        familiar_policy_.remember_success(familiar, source->key, now);
      }
      break;
    }
    case MessageType::password_changed: {
      // A new password lifts the failure locks of every scope.
      const bool lifted = policy_.lift_failure_lock(state, now);
      const bool lifted_unfamiliar = policy_.lift_failure_lock(unfamiliar, now);
      if (record_changes_) {
        const auto lift = [policy = policy_, now](UserState& s) {
          policy.lift_failure_lock(s, now);
        };
        state_steps.push_back(lift);
        unfamiliar_steps.push_back(lift);
      }
      if (lifted || lifted_unfamiliar) {
        add_event(work, request.user, HistoryEvent::password_changed, origin, state, now);
      }
      break;
    }
    case MessageType::check:
    case MessageType::answer:
      break;
  }

  // The verdict of the attempt's scope; a manual lock covers them all.
  LockStatus status = rule.verdict(state, now);
  if (scope == UserScope::unfamiliar && status.kind != LockKind::manual) {
    status = rule.verdict(unfamiliar, now);
  }
  auto answer = answer_for(status, state);
  if (state != before || unfamiliar != unfamiliar_before || familiar != familiar_before) {
    const bool unfamiliar_failure = scope == UserScope::unfamiliar;
    if (unfamiliar != unfamiliar_before) {
      stage_unfamiliar(request.user, unfamiliar, now, work, std::move(unfamiliar_steps),
                       unfamiliar_failure ? failure_step : std::nullopt);
    }
    if (familiar != familiar_before) stage_familiar(request.user, familiar, work);
    stage(request.user, old_expiry, state, now, work, std::move(state_steps),
          unfamiliar_failure ? std::nullopt : failure_step);
  }
  return combined(std::move(answer));
}

Store::SharedRowKeys LockoutService::adopt_shared(
    const std::vector<SharedStateChange>& changes, const PendingWork& pending, TimePoint now,
    const std::function<bool(SharedTable, const std::string&)>& current) {
  Store::SharedRowKeys deferred;
  // The stage functions keep memory and the indexes in step; what they
  // stage for the store goes nowhere.
  PendingWork discarded;
  const auto with_pending = [](UserState state, const std::map<std::string, StateMerge>& merges,
                               const std::string& key) {
    if (const auto found = merges.find(key); found != merges.end()) {
      for (const StateChange& step : found->second.changes) step(state);
    }
    return state;
  };
  for (const SharedStateChange& change : changes) {
    if (current && !current(change.table, change.key)) {
      deferred.emplace_back(change.table, change.key);
      continue;
    }
    switch (change.table) {
      case SharedTable::users: {
        const UserState state =
            with_pending(change.state.value_or(UserState{}), pending.state_merges, change.key);
        const auto found = states_.find(change.key);
        std::optional<TimePoint> old_expiry;
        if (found != states_.end()) old_expiry = policy_.next_expiry(unpack(*found));
        if (found == states_.end() && state == UserState{}) break;
        stage(change.key, old_expiry, state, now, discarded);
        break;
      }
      case SharedTable::sources: {
        const UserState state =
            with_pending(change.state.value_or(UserState{}), pending.source_merges, change.key);
        if (!sources_.contains(change.key) && state == UserState{}) break;
        stage_source(change.key, state, now, discarded);
        break;
      }
      case SharedTable::unfamiliar: {
        const UserState state = with_pending(change.state.value_or(UserState{}),
                                             pending.unfamiliar_merges, change.key);
        if (state == UserState{} && unfamiliar_.find(change.key) == unfamiliar_.end()) break;
        // A user with extras has an entry in states_ (maybe idle).
        if (state != UserState{} && states_.find(change.key) == states_.end()) {
          put_in_memory(change.key, UserState{}, states_.end());
        }
        stage_unfamiliar(change.key, state, now, discarded);
        break;
      }
      case SharedTable::familiar: {
        // This host's own list still waiting for its commit is newer.
        if (pending.familiar.contains(change.key)) break;
        if (change.familiar.empty() && familiar_.find(change.key) == familiar_.end()) break;
        if (!change.familiar.empty() && states_.find(change.key) == states_.end()) {
          put_in_memory(change.key, UserState{}, states_.end());
        }
        stage_familiar(change.key, change.familiar, discarded);
        break;
      }
    }
  }
  return deferred;
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
      std::vector<StateChange> steps;
      if (record_changes_) {
        steps.push_back([policy = source_policy_, now](UserState& s) { policy.settle(s, now); });
      }
      stage_source(key, state, now, work, std::move(steps));
    } else {
      // Not due under the current rules: re-index from the state.
      unindex_source(found);
      found->second.expiry.reset();
      const auto expiry = source_policy_.next_expiry(state);
      if (expiry && *expiry > now) index_source(found);
    }
  }
  while (!unfamiliar_expiries_.empty() && unfamiliar_expiries_.begin()->first <= now) {
    const std::string user = unfamiliar_expiries_.begin()->second;
    const auto found = unfamiliar_.find(user);
    if (found == unfamiliar_.end()) {
      unfamiliar_expiries_.erase(unfamiliar_expiries_.begin());
      continue;
    }
    UserState state = found->second;
    const UserState before = state;
    if (policy_.settle(state, now)) {
      add_event(work, user, HistoryEvent::expired, EventOrigin{}, before, now, {},
                "scope unfamiliar");
      work.events.back().scope = "unfamiliar";
    }
    if (state != before) {
      std::vector<StateChange> steps;
      if (record_changes_) {
        steps.push_back([policy = policy_, now](UserState& s) { policy.settle(s, now); });
      }
      stage_unfamiliar(user, state, now, work, std::move(steps));
    } else {
      unfamiliar_expiries_.erase(unfamiliar_expiries_.begin());
      if (auto expiry = policy_.next_expiry(state); expiry && *expiry > now) {
        unfamiliar_expiries_.emplace(*expiry, user);
      }
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
      const bool scoped = familiar_policy_.rules().scope == LockoutScope::unfamiliar;
      add_event(work, user, HistoryEvent::expired, EventOrigin{}, before, now, {},
                scoped ? "scope familiar" : "");
      if (scoped) work.events.back().scope = "familiar";
    }
    if (state != before) {
      std::vector<StateChange> steps;
      if (record_changes_) {
        steps.push_back([policy = policy_, now](UserState& s) { policy.settle(s, now); });
      }
      stage(user, old_expiry, state, now, work, std::move(steps));
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
  if (!unfamiliar_expiries_.empty() && (!next || unfamiliar_expiries_.begin()->first < *next)) {
    next = unfamiliar_expiries_.begin()->first;
  }
  return next;
}

bool LockoutService::unlock(const std::string& user, std::uint32_t admin_uid, TimePoint now,
                            PendingWork& work) {
  const auto found = states_.find(user);
  if (found == states_.end()) return false;
  note_replayable(work, ReplayableEvent::Kind::unlock, now, user, {}, admin_uid, std::nullopt);
  UserState state = unpack(*found);
  const auto old_expiry = policy_.next_expiry(state);
  UserState unfamiliar = unfamiliar_of(user);
  const bool was_locked =
      policy_.status(state, now).locked() || policy_.status(unfamiliar, now).locked();
  policy_.unlock(state);
  const auto unlock_step = [this]() -> std::vector<StateChange> {
    if (!record_changes_) return {};
    return {[policy = policy_](UserState& s) { policy.unlock(s); }};
  };
  // Both scopes (lockout_scope = unfamiliar): an admin's unlock is for the
  // account. The familiar sources stay: they are not a lock.
  if (unfamiliar_.find(user) != unfamiliar_.end()) {
    policy_.unlock(unfamiliar);
    stage_unfamiliar(user, unfamiliar, now, work, unlock_step());
  }
  // The event says what happened to the account, whichever command did it:
  // a consumer watching for lifted locks must see a --reset that lifted one.
  add_event(work, user, was_locked ? HistoryEvent::unlocked : HistoryEvent::reset, EventOrigin{},
            state, now, admin_uid);
  stage(user, old_expiry, state, now, work, unlock_step());
  return true;
}

void LockoutService::lock(const std::string& user, std::string reason, std::uint32_t admin_uid,
                          TimePoint now, PendingWork& work, std::optional<Seconds> duration) {
  note_replayable(work, ReplayableEvent::Kind::lock, now, user, reason, admin_uid, duration);
  const auto found = states_.find(user);
  UserState state = found == states_.end() ? UserState{} : unpack(*found);
  const auto old_expiry = policy_.next_expiry(state);
  policy_.lock_manually(state, reason, admin_uid, now, duration);
  std::vector<StateChange> steps;
  if (record_changes_) {
    steps.push_back([policy = policy_, reason, admin_uid, now, duration](UserState& s) {
      policy.lock_manually(s, reason, admin_uid, now, duration);
    });
  }
  // The history keeps the reason; a timed lock says for how long.
  std::string detail = std::move(reason);
  if (duration) {
    const std::string span = "for " + format_duration(*duration);
    detail = detail.empty() ? span : detail + " (" + span + ")";
  }
  add_event(work, user, HistoryEvent::manual_lock, EventOrigin{}, state, now, admin_uid,
            std::move(detail));
  stage(user, old_expiry, state, now, work, std::move(steps));
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
  std::vector<StateChange> steps;
  if (record_changes_) {
    steps.push_back(
        [policy = policy_, is_root, when](UserState& s) { policy.record_failure(s, is_root, when); });
  }
  add_event(work, user, outcome.locked_now ? HistoryEvent::locked : HistoryEvent::failure, origin,
            state, when, admin_uid, std::move(detail));
  // Idle as of the record's own time, not of now: a record that has aged
  // out by now still counts for the user's next, newer record (chained, or
  // sliding with deny failures close together). What stays idle, the sweep
  // removes.
  stage(user, old_expiry, state, when, work, std::move(steps));
}

std::optional<UserReport> LockoutService::report(const std::string& user, TimePoint now) const {
  const auto found = states_.find(user);
  if (found == states_.end()) return std::nullopt;
  UserState state = unpack(*found);
  policy_.settle(state, now);
  UserReport report{user, policy_.status(state, now), state};
  fill_scopes(report, now);
  return report;
}

void LockoutService::fill_scopes(UserReport& report, TimePoint now) const {
  report.scope = familiar_policy_.rules().scope;
  report.familiar_memory = familiar_policy_.rules().memory;
  if (const auto found = unfamiliar_.find(report.user); found != unfamiliar_.end()) {
    report.unfamiliar_state = found->second;
    policy_.settle(report.unfamiliar_state, now);
    // Read as a lock only where it locks: with lockout_scope = account an
    // old unfamiliar-source state decides nothing.
    if (report.scope == LockoutScope::unfamiliar) {
      report.unfamiliar_status = policy_.status(report.unfamiliar_state, now);
    } else {
      report.unfamiliar_status.failures = report.unfamiliar_state.failures;
      report.unfamiliar_status.level = report.unfamiliar_state.level;
    }
  }
  if (const auto found = familiar_.find(report.user); found != familiar_.end()) {
    report.familiar = found->second;
    familiar_policy_.forget_old(report.familiar, now);
  }
}

std::vector<UserReport> LockoutService::page(std::string_view after, std::size_t limit,
                                             bool locked_only, TimePoint now) const {
  std::vector<UserReport> out;
  const auto add = [&](const StateMap::value_type& entry) {
    UserState state = unpack(entry);
    policy_.settle(state, now);
    UserReport report{entry.first, policy_.status(state, now), std::move(state)};
    fill_scopes(report, now);
    if (locked_only && !report.locked_anywhere()) return;
    out.push_back(std::move(report));
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
    // The extras first: forgotten familiar sources go, and an unfamiliar-
    // source state that is idle (a lock in it is the expiry timer's).
    bool extras_left = false;
    if (const auto familiar = familiar_.find(it->first); familiar != familiar_.end()) {
      std::vector<FamiliarSource> sources = familiar->second;
      bool changed = familiar_policy_.forget_old(sources, now);
      // A familiar_sources_max lowered by a reload applies here too.
      const std::size_t max = std::max<std::uint32_t>(familiar_policy_.rules().max_per_user, 1);
      if (sources.size() > max) {
        sources.resize(max);
        changed = true;
      }
      if (changed) stage_familiar(it->first, sources, work);
      extras_left = !sources.empty();
    }
    if (const auto unfamiliar = unfamiliar_.find(it->first); unfamiliar != unfamiliar_.end()) {
      if (!unfamiliar->second.failure_lock && idle_under_every_rule(unfamiliar->second, now)) {
        // Staged as it is: idle, so deleted, and with a shared store only
        // if no other host changed it meanwhile.
        const UserState idle = unfamiliar->second;
        stage_unfamiliar(it->first, idle, now, work);
      } else {
        extras_left = true;
      }
    }
    // A lock is never swept: its end is the expiry timer's to announce.
    if (!extras_left && !m.failure_lock && !m.manual_lock &&
        idle_under_every_rule(unpack(*it), now)) {
      work.states.insert_or_assign(it->first, std::nullopt);
      note_merge(work.state_merges, it->first, unpack(*it), {});
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
      note_merge(work.source_merges, source->first, source->second.state, {});
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
    if (familiar_policy_.rules().scope == LockoutScope::unfamiliar) {
      if (const auto unfamiliar = unfamiliar_.find(user);
          unfamiliar != unfamiliar_.end() && policy_.status(unfamiliar->second, now).locked()) {
        ++counts.unfamiliar_scope;
      }
    }
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
                           const UserState& state, TimePoint now, PendingWork& work,
                           std::vector<StateChange> steps, std::optional<FailureStep> failure) {
  note_merge(work.state_merges, user, state, std::move(steps), std::move(failure));
  if (old_expiry) expiries_.erase({*old_expiry, user});
  const auto found = states_.find(user);
  if (idle_under_every_rule(state, now) && !has_extras(user)) {
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
  note_replayable(work, ReplayableEvent::Kind::lock_source, now, key, reason, admin_uid, duration);
  const auto found = sources_.find(key);
  UserState state = found == sources_.end() ? UserState{} : found->second.state;
  source_policy_.lock_manually(state, reason, admin_uid, now, duration);
  std::vector<StateChange> steps;
  if (record_changes_) {
    steps.push_back([policy = source_policy_, reason, admin_uid, now, duration](UserState& s) {
      policy.lock_manually(s, reason, admin_uid, now, duration);
    });
  }
  EventOrigin origin;
  add_source_event(work, HistoryEvent::source_blocked, key, std::string(), origin, state, now,
                   admin_uid);
  // The journal says why; the history row names the source in `detail`.
  work.events.back().reason = std::move(reason);
  work.events.back().failures = 0;
  work.events.back().locked_until = duration ? state.manual_lock->until : std::nullopt;
  stage_source(key, state, now, work, std::move(steps));
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
  std::vector<StateChange> steps;
  if (record_changes_) {
    steps.push_back([policy = source_policy_, source, now](UserState& s) {
      policy.record_failure(source, s, now);
    });
  }
  if (outcome.block_expired) {
    add_source_event(work, HistoryEvent::source_expired, source.key, std::string(), EventOrigin{},
                     before, now);
  }
  if (outcome.blocked_now) {
    add_source_event(work, HistoryEvent::source_blocked, source.key, request.user, origin, state,
                     now);
  }
  if (state != before) stage_source(source.key, state, now, work, std::move(steps));
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
                                  PendingWork& work, std::vector<StateChange> steps) {
  note_merge(work.source_merges, key, state, std::move(steps));
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
  note_replayable(work, ReplayableEvent::Kind::unlock_source, now, source, {}, admin_uid,
                  std::nullopt);
  UserState state = found->second.state;
  source_policy_.unlock(state);
  std::vector<StateChange> steps;
  if (record_changes_) {
    steps.push_back([policy = source_policy_](UserState& s) { policy.unlock(s); });
  }
  add_source_event(work, HistoryEvent::source_unlocked, source, std::string(), EventOrigin{}, state,
                   now, admin_uid);
  stage_source(source, state, now, work, std::move(steps));
  return true;
}

}  // namespace acctlock
