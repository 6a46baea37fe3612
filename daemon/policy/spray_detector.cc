// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/policy/spray_detector.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <string>

namespace acctlock {

SprayDetector::SprayDetector(SprayRules rules, std::uint64_t salt)
    : rules_(rules), salt_(salt) {
  slice_seconds_ = std::max<std::int64_t>(rules_.window.count() / kSlices, 1);
  slice_numbers_.fill(-1);
  users_.cap = rules_.users;
  sources_.cap = rules_.sources;
}

void SprayDetector::Distinct::add(std::size_t slice, std::uint64_t hash) {
  auto& seen = slices[slice];
  // Past the threshold a slice needs no more: the alarm only asks whether
  // the union reaches it.
  if (seen.size() >= cap) return;
  if (seen.insert(hash).second) ++slices_holding[hash];
}

void SprayDetector::Distinct::clear_slice(std::size_t slice) {
  for (const std::uint64_t hash : slices[slice]) {
    const auto found = slices_holding.find(hash);
    if (found != slices_holding.end() && --found->second == 0) slices_holding.erase(found);
  }
  slices[slice].clear();
}

std::uint64_t SprayDetector::hash(std::string_view text) const {
  std::string keyed(reinterpret_cast<const char*>(&salt_), sizeof salt_);
  keyed.append(text);
  return std::hash<std::string>{}(keyed);
}

void SprayDetector::advance(std::int64_t slice_number) {
  for (std::size_t i = 0; i < kSlices; ++i) {
    // A slice older than the window, or from the future (the clock went
    // back): gone.
    const std::int64_t held = slice_numbers_[i];
    if (held < 0) continue;
    if (held <= slice_number - static_cast<std::int64_t>(kSlices) || held > slice_number) {
      users_.clear_slice(i);
      sources_.clear_slice(i);
      failures_[i] = 0;
      slice_numbers_[i] = -1;
    }
  }
}

std::optional<SprayFigures> SprayDetector::record_failure(std::string_view user,
                                                          std::string_view source, TimePoint now) {
  if (rules_.users == 0) return std::nullopt;
  const std::int64_t slice_number = now.time_since_epoch().count() / slice_seconds_;
  advance(slice_number);
  const auto slice = static_cast<std::size_t>(slice_number % static_cast<std::int64_t>(kSlices));
  slice_numbers_[slice] = slice_number;
  ++failures_[slice];
  users_.add(slice, hash(user));
  if (!source.empty()) sources_.add(slice, hash(source));

  if (users_.count() < rules_.users || sources_.count() < rules_.sources) return std::nullopt;
  // Once per window: a spray that goes on is one alarm per spray_window.
  if (last_alarm_ && now - *last_alarm_ < rules_.window && now >= *last_alarm_) return std::nullopt;
  last_alarm_ = now;
  SprayFigures figures;
  figures.users = static_cast<std::uint32_t>(users_.count());
  figures.sources = static_cast<std::uint32_t>(sources_.count());
  figures.failures = std::accumulate(failures_.begin(), failures_.end(), std::uint64_t{0});
  figures.window = rules_.window;
  return figures;
}

}  // namespace acctlock
