// SPDX-License-Identifier: BSD-3-Clause
// The sources with most failures, for `acctlock stats`: the history's
// failures folded by source key (normalise_source, source_policy.h), so that
// an IPv6 /64 whose attacker used a fresh address for every attempt is one
// source with all its failures, as the lockout counted it, and not as many
// sources with one failure each.
//
// The history keeps the rhost and ruser as the service gave them, not the
// key (source_prefix_v6 may change at a reload), so the store hands over its
// failures grouped by origin (Store::for_each_failure_origin, one row per
// distinct rhost, and per ruser of local attempts) and this folds them.
// Memory stays bounded however many origins the last day holds (a flood of
// distinct addresses): at most `capacity` sources are held at once, with the
// Space-Saving algorithm (Metwally, Agrawal, El Abbadi, 2005): past capacity
// a new source takes the place of the one with fewest failures and inherits
// its count as a possible error. Then every source with more than
// total / capacity failures is still held. If any source was displaced, a
// second pass over the origins counts the sources that may rank exactly, so
// the figures shown are exact; only a source with no more failures than the
// least held one may then be missing from the ranking (`complete` false).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace acctlock {

// One distinct origin of failures and how many there were.
using FailureOriginVisitor =
    std::function<void(std::string_view rhost, std::string_view ruser, std::uint64_t failures)>;
// Hands every origin to the visitor, the same ones each time it is called.
using FailureOriginScan = std::function<void(const FailureOriginVisitor&)>;

// Sources held at once: about 150 bytes each, so about 10 MB at most.
inline constexpr std::size_t kSourceRankingCapacity = 65'536;

struct SourceRanking {
  std::vector<std::pair<std::string, std::uint64_t>> top;  // most failures first, then by key
  // False when a source left out could have as many failures as the last
  // one listed (more distinct sources than the capacity, each with few).
  bool complete = true;
  // How many times the origins were scanned: 1, or 2 past capacity.
  int passes = 0;
};

// The `limit` sources with most failures among the origins `scan` gives,
// keyed with IPv6 masked to `prefix_v6`. The console ("local", never
// blocked) and origins that name no source (normalise_source's nullopt)
// are left out.
SourceRanking rank_failure_sources(const FailureOriginScan& scan, unsigned prefix_v6,
                                   std::size_t limit,
                                   std::size_t capacity = kSourceRankingCapacity);

}  // namespace acctlock
