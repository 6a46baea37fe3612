// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/policy/source_ranking.h"

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_map>

#include "daemon/policy/source_policy.h"

namespace acctlock {

namespace {

// The key of an origin, or nullopt for the console and for what names no
// source.
std::optional<std::string> source_key(std::string_view rhost, std::string_view ruser,
                                      unsigned prefix_v6) {
  std::optional<Source> source = normalise_source(rhost, ruser, prefix_v6);
  if (!source || source->kind == Source::Kind::console) return std::nullopt;
  return std::move(source->key);
}

// Most failures first, ties in key order: the order the ranking is shown in.
void sort_ranked(std::vector<std::pair<std::string, std::uint64_t>>& ranked) {
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
}

// The Space-Saving summary: at most `capacity` sources, each with a count
// that may overstate its failures by at most its `error`.
class SpaceSaving {
 public:
  explicit SpaceSaving(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

  void add(std::string key, std::uint64_t failures) {
    if (const auto found = held_.find(key); found != held_.end()) {
      by_count_.erase({found->second.count, &found->first});
      found->second.count += failures;
      by_count_.insert({found->second.count, &found->first});
      return;
    }
    Counter counter{failures, 0};
    if (held_.size() >= capacity_) {
      // The new source takes the place of the one with fewest failures and
      // may have had as many as it, unseen.
      const auto fewest = by_count_.begin();
      const std::uint64_t displaced = fewest->first;
      const std::string* displaced_key = fewest->second;
      by_count_.erase(fewest);
      held_.erase(*displaced_key);
      counter = Counter{displaced + failures, displaced};
      overflowed_ = true;
    }
    const auto inserted = held_.emplace(std::move(key), counter).first;
    by_count_.insert({counter.count, &inserted->first});
  }

  bool overflowed() const { return overflowed_; }
  std::uint64_t fewest() const { return by_count_.empty() ? 0 : by_count_.begin()->first; }

  // Every held source with its count, exact while nothing overflowed.
  std::vector<std::pair<std::string, std::uint64_t>> counts() const {
    std::vector<std::pair<std::string, std::uint64_t>> all;
    all.reserve(held_.size());
    for (const auto& [key, counter] : held_) all.emplace_back(key, counter.count);
    return all;
  }

  // The held sources that may be among the first `limit`: those whose count
  // reaches the `limit`-th largest of the counts less their errors.
  std::vector<std::string> candidates(std::size_t limit) const {
    std::vector<std::uint64_t> lower;
    lower.reserve(held_.size());
    for (const auto& entry : held_) lower.push_back(entry.second.count - entry.second.error);
    std::uint64_t threshold = 0;
    if (limit > 0 && lower.size() >= limit) {
      std::nth_element(lower.begin(), lower.begin() + static_cast<std::ptrdiff_t>(limit - 1),
                       lower.end(), std::greater<>());
      threshold = lower[limit - 1];
    }
    std::vector<std::string> keys;
    for (const auto& entry : held_) {
      if (entry.second.count >= threshold) keys.push_back(entry.first);
    }
    return keys;
  }

 private:
  struct Counter {
    std::uint64_t count = 0;
    std::uint64_t error = 0;
  };
  struct ByCount {
    bool operator()(const std::pair<std::uint64_t, const std::string*>& a,
                    const std::pair<std::uint64_t, const std::string*>& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };

  std::size_t capacity_;
  // Node-based: the keys' addresses stay valid for by_count_.
  std::unordered_map<std::string, Counter> held_;
  std::set<std::pair<std::uint64_t, const std::string*>, ByCount> by_count_;
  bool overflowed_ = false;
};

}  // namespace

SourceRanking rank_failure_sources(const FailureOriginScan& scan, unsigned prefix_v6,
                                   std::size_t limit, std::size_t capacity) {
  SourceRanking ranking;
  SpaceSaving summary(capacity);
  scan([&](std::string_view rhost, std::string_view ruser, std::uint64_t failures) {
    if (failures == 0) return;
    if (auto key = source_key(rhost, ruser, prefix_v6)) summary.add(std::move(*key), failures);
  });
  ranking.passes = 1;

  std::vector<std::pair<std::string, std::uint64_t>> ranked;
  if (!summary.overflowed()) {
    ranked = summary.counts();
  } else {
    // Count the candidates again, exactly.
    std::unordered_map<std::string, std::uint64_t> exact;
    for (auto& key : summary.candidates(limit)) exact.emplace(std::move(key), 0);
    scan([&](std::string_view rhost, std::string_view ruser, std::uint64_t failures) {
      const auto key = source_key(rhost, ruser, prefix_v6);
      if (!key) return;
      if (const auto found = exact.find(*key); found != exact.end()) found->second += failures;
    });
    ranking.passes = 2;
    ranked.assign(exact.begin(), exact.end());
  }
  sort_ranked(ranked);
  if (ranked.size() > limit) ranked.resize(limit);
  // A source no longer held has at most as many failures as the least held.
  ranking.complete = !summary.overflowed() || (ranked.size() == limit && limit > 0 &&
                                               ranked.back().second > summary.fewest());
  ranking.top = std::move(ranked);
  return ranking;
}

}  // namespace acctlock
