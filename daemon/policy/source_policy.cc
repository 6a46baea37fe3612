// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/policy/source_policy.h"

#include <algorithm>
#include <utility>

namespace acctlock {
namespace {

// Printable ASCII or UTF-8 bytes, no spaces: what a host or user name can be
// without breaking the journal's fields or the admin command's columns.
bool is_plain_name(std::string_view text) {
  if (text.empty() || text.size() > kMaxSourceKeyLength) return false;
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

std::string lower_case_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

LockoutRules counting_rules(const SourceRules& source) {
  LockoutRules rules;
  rules.deny = source.deny;
  rules.fail_interval = source.fail_interval;
  rules.fail_window = source.fail_window;
  rules.unlock_time = source.unlock_time;
  rules.lockout_multiplier = source.lockout_multiplier;
  rules.max_unlock_time = source.max_unlock_time;
  rules.lockout_memory = source.lockout_memory;
  rules.permanent_after = 0;
  rules.even_deny_root = false;  // sources are never root: record_failure passes is_root = false
  return rules;
}

}  // namespace

std::optional<Source> normalise_source(std::string_view rhost, std::string_view ruser,
                                       unsigned prefix_v6) {
  Source source;
  if (rhost.empty()) {
    if (ruser.empty()) {
      source.kind = Source::Kind::console;
      source.key = "local";
      return source;
    }
    // "local:" plus the name keeps within kMaxSourceKeyLength + 6 bytes.
    if (!is_plain_name(ruser)) return std::nullopt;
    source.kind = Source::Kind::local_user;
    source.key = "local:" + std::string(ruser);
    return source;
  }

  if (const std::optional<IpAddress> address = parse_ip_address(rhost)) {
    source.address = address;
    if (address->is_v6) {
      // One site, and one attacker, usually holds a whole /64 and can pick
      // a fresh address from it for every attempt.
      const unsigned length = std::min(prefix_v6, 128u);
      source.kind = Source::Kind::ipv6;
      source.key = format_ip_address(mask_address(*address, length)) + "/" + std::to_string(length);
    } else {
      source.kind = Source::Kind::ipv4;
      source.key = format_ip_address(*address);
    }
    return source;
  }

  // Not an address, so a host name. ':' and '/' only occur in addresses and
  // prefixes: a name with them is garbage that could be mistaken for an IPv6
  // source's key or a "local:RUSER" one.
  if (!is_plain_name(rhost) || rhost.find_first_of(":/[]") != std::string_view::npos) {
    return std::nullopt;
  }
  source.kind = Source::Kind::host;
  source.key = lower_case_ascii(rhost);
  // A host called "local" must not be taken for the console, which is never
  // blocked; "local." is the same DNS name, fully qualified.
  if (source.key == "local") source.key = "local.";
  return source;
}

SourcePolicy::SourcePolicy(SourceRules rules)
    : rules_(std::move(rules)), counter_(counting_rules(rules_)) {}

bool SourcePolicy::is_trusted(const Source& source) const {
  if (!source.address) return false;
  return std::any_of(rules_.trusted.begin(), rules_.trusted.end(),
                     [&](const AddressPrefix& prefix) { return prefix.contains(*source.address); });
}

bool SourcePolicy::may_block(const Source& source) const {
  return rules_.deny != 0 && source.kind != Source::Kind::console && !is_trusted(source);
}

bool SourcePolicy::settle(UserState& state, TimePoint now) const {
  return counter_.settle(state, now);
}

LockStatus SourcePolicy::status(const Source& source, const UserState& state, TimePoint now) const {
  if (source.kind == Source::Kind::console) return LockStatus{};
  LockStatus status = counter_.status(state, now);
  // A trusted source is never blocked by failures, but an admin's explicit
  // block of it stands.
  if (is_trusted(source) && status.kind != LockKind::manual) {
    status.kind = LockKind::none;
    status.until.reset();
  }
  return status;
}

SourceFailureOutcome SourcePolicy::record_failure(const Source& source, UserState& state,
                                                  TimePoint now) const {
  SourceFailureOutcome outcome;
  if (!may_block(source)) {
    outcome.block_expired = counter_.settle(state, now);
    return outcome;
  }
  const FailureOutcome counted = counter_.record_failure(state, false, now);
  outcome.counted = counted.counted;
  outcome.blocked_now = counted.locked_now;
  outcome.block_expired = counted.lock_expired;
  return outcome;
}

void SourcePolicy::unlock(UserState& state) const {
  counter_.unlock(state);
}

void SourcePolicy::lock_manually(UserState& state, std::string reason, std::uint32_t admin_uid,
                                 TimePoint now, std::optional<Seconds> duration) const {
  counter_.lock_manually(state, std::move(reason), admin_uid, now, duration);
}

const AddressPrefix* SourcePolicy::trusted_overlap(const AddressPrefix& prefix) const {
  for (const AddressPrefix& trusted : rules_.trusted) {
    if (trusted.network.is_v6 != prefix.network.is_v6) continue;
    // Two prefixes overlap exactly when the shorter one holds the other's
    // network.
    const AddressPrefix& shorter = trusted.length <= prefix.length ? trusted : prefix;
    const AddressPrefix& longer = trusted.length <= prefix.length ? prefix : trusted;
    if (shorter.contains(longer.network)) return &trusted;
  }
  return nullptr;
}

std::optional<TimePoint> SourcePolicy::next_expiry(const UserState& state) const {
  return counter_.next_expiry(state);
}

bool SourcePolicy::is_idle(const UserState& state, TimePoint now) const {
  return counter_.is_idle(state, now);
}

const ManualSourceBlock* SourcePolicy::manual_block_for(
    const Source& source, const std::vector<ManualSourceBlock>& blocks) {
  if (!source.address) return nullptr;
  for (const ManualSourceBlock& block : blocks) {
    if (block.prefix.contains(*source.address)) return &block;
  }
  return nullptr;
}

FamiliarSourcePolicy::FamiliarSourcePolicy(FamiliarSourceRules rules) : rules_(std::move(rules)) {}

bool FamiliarSourcePolicy::forget_old(std::vector<FamiliarSource>& sources, TimePoint now) const {
  // At exactly familiar_source_memory the source is forgotten, like
  // lockout_memory. A success in the future (clock set back) stays.
  const auto forgotten = [&](const FamiliarSource& s) {
    return now - s.last_success >= rules_.memory;
  };
  const auto removed = std::erase_if(sources, forgotten);
  return removed != 0;
}

void FamiliarSourcePolicy::remember_success(std::vector<FamiliarSource>& sources,
                                            std::string_view source_key, TimePoint now) const {
  forget_old(sources, now);
  const auto found = std::find_if(sources.begin(), sources.end(),
                                  [&](const FamiliarSource& s) { return s.key == source_key; });
  if (found != sources.end()) {
    found->last_success = std::max(found->last_success, now);
    // To the front, so that among successes in the same second the newest
    // stays ahead: it is the one kept at the bound.
    std::rotate(sources.begin(), found, found + 1);
  } else {
    sources.insert(sources.begin(), FamiliarSource{std::string(source_key), now});
  }
  std::stable_sort(sources.begin(), sources.end(),
                   [](const FamiliarSource& a, const FamiliarSource& b) {
                     return a.last_success > b.last_success;
                   });
  const std::size_t max = std::max<std::uint32_t>(rules_.max_per_user, 1);
  if (sources.size() > max) sources.resize(max);
}

bool FamiliarSourcePolicy::is_familiar(const std::vector<FamiliarSource>& sources,
                                       std::string_view source_key, TimePoint now) const {
  return std::any_of(sources.begin(), sources.end(), [&](const FamiliarSource& s) {
    return s.key == source_key && now - s.last_success < rules_.memory;
  });
}

UserScope user_scope_for(LockoutScope mode, bool familiar) {
  if (mode == LockoutScope::account) return UserScope::account;
  return familiar ? UserScope::familiar : UserScope::unfamiliar;
}

UserState& state_for_scope(ScopedUserState& state, UserScope scope) {
  return scope == UserScope::unfamiliar ? state.unfamiliar : state.main;
}

LockStatus scoped_status(const LockoutPolicy& policy, const ScopedUserState& state, UserScope scope,
                         TimePoint now) {
  // The manual lock lives on `main` and covers every scope.
  if (state.main.manual_lock || scope != UserScope::unfamiliar) {
    return policy.status(state.main, now);
  }
  return policy.status(state.unfamiliar, now);
}

std::string_view to_string(UserScope scope) {
  switch (scope) {
    case UserScope::account:
      return "account";
    case UserScope::familiar:
      return "familiar";
    case UserScope::unfamiliar:
      return "unfamiliar";
  }
  return "account";
}

std::string_view to_string(Source::Kind kind) {
  switch (kind) {
    case Source::Kind::ipv4:
      return "ipv4";
    case Source::Kind::ipv6:
      return "ipv6";
    case Source::Kind::host:
      return "host";
    case Source::Kind::local_user:
      return "local_user";
    case Source::Kind::console:
      return "console";
  }
  return "console";
}

}  // namespace acctlock
