// SPDX-License-Identifier: BSD-3-Clause
// Spray detection (issue 11): failed logins for many distinct users from
// many distinct sources within a window, the shape of a password spray
// (one or two passwords tried on each of many names, spread over many
// addresses so that no one user or source reaches its own limit). The
// daemon announces it with a `spray_suspected` journal event; nothing is
// blocked.
//
// Pure code with an injected clock, like the policies. Bounded whatever an
// attacker sends: the window is kept as kSlices slices, each remembering
// at most `users` user names and `sources` sources (as keyed 64-bit
// hashes), so memory is at most kSlices * (users + sources) hashes and a
// failure costs O(1) (a slice that falls out of the window costs its own
// size once). Capping each slice at the threshold loses no alarm: the
// union of the capped slices reaches the threshold exactly when the true
// union does. The figures it reports are therefore "at least".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/options.h"
#include "common/time.h"

namespace acctlock {

// What the alarm reports.
struct SprayFigures {
  std::uint32_t users = 0;     // distinct users failed in the window (at least)
  std::uint32_t sources = 0;   // distinct sources they failed from (at least)
  std::uint64_t failures = 0;  // failures in the window
  Seconds window{0};
};

class SprayDetector {
 public:
  // The window in slices: the alarm looks at the last kSlices slices of
  // spray_window / kSlices each, the current one included.
  static constexpr std::size_t kSlices = 10;

  // `salt` keys the hashes, so that an attacker cannot pick names that
  // collide to hide a spray.
  SprayDetector(SprayRules rules, std::uint64_t salt);

  const SprayRules& rules() const { return rules_; }

  // One failed login: the name tried (known to NSS or not) and its source
  // key ("" when it has none). Returns the figures when they pass both
  // thresholds and no alarm was given in the last spray_window.
  std::optional<SprayFigures> record_failure(std::string_view user, std::string_view source,
                                             TimePoint now);

 private:
  // One dimension (users or sources): per slice, the hashes seen (at most
  // `cap`), and across slices how many slices hold each hash.
  struct Distinct {
    std::array<std::unordered_set<std::uint64_t>, kSlices> slices;
    std::unordered_map<std::uint64_t, std::uint32_t> slices_holding;
    std::size_t cap = 0;

    void add(std::size_t slice, std::uint64_t hash);
    void clear_slice(std::size_t slice);
    std::size_t count() const { return slices_holding.size(); }
  };

  std::uint64_t hash(std::string_view text) const;
  // Clears the slices that left the window by `now`'s slice.
  void advance(std::int64_t slice_number);

  SprayRules rules_;
  std::uint64_t salt_;
  std::int64_t slice_seconds_ = 60;
  std::array<std::int64_t, kSlices> slice_numbers_{};  // which slice each holds; -1 = none
  std::array<std::uint64_t, kSlices> failures_{};
  Distinct users_;
  Distinct sources_;
  std::optional<TimePoint> last_alarm_;
};

}  // namespace acctlock
