// SPDX-License-Identifier: BSD-3-Clause
#include "cli/time_text.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "common/options.h"

namespace acctlock::cli {
namespace {

// strptime with `format` that must consume all of `text`.
std::optional<std::tm> parse_exact(const std::string& text, const char* format) {
  std::tm parts{};
  const char* end = strptime(text.c_str(), format, &parts);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return parts;
}

std::optional<TimePoint> local_to_time_point(std::tm parts) {
  parts.tm_isdst = -1;  // let the zone rules decide
  const std::time_t seconds = std::mktime(&parts);
  if (seconds == static_cast<std::time_t>(-1)) return std::nullopt;
  return TimePoint(Seconds(seconds));
}

TimePoint local_midnight(TimePoint time) {
  const std::time_t seconds = static_cast<std::time_t>(time.time_since_epoch().count());
  std::tm parts{};
  localtime_r(&seconds, &parts);
  parts.tm_hour = parts.tm_min = parts.tm_sec = 0;
  return local_to_time_point(parts).value_or(time);
}

}  // namespace

std::optional<TimePoint> parse_time(std::string_view text, TimePoint now) {
  std::string value(text);
  if (value == "today") return local_midnight(now);
  if (value == "yesterday") return local_midnight(local_midnight(now) - Seconds(12 * 3600));

  std::string relative = value;
  if (relative.size() > 4 && relative.ends_with(" ago")) relative.resize(relative.size() - 4);
  // Bare digits would be seconds to parse_duration; as a time they are more
  // likely a mistyped date, so a duration here needs its unit.
  const bool has_unit = std::any_of(relative.begin(), relative.end(), [](char c) {
    return std::isalpha(static_cast<unsigned char>(c));
  });
  if (has_unit && relative != "never") {
    if (const auto duration = parse_duration(relative); duration && duration->count() > 0) {
      return now - *duration;
    }
  }

  const bool utc = value.ends_with('Z');
  if (utc) value.pop_back();
  static constexpr const char* kFormats[] = {"%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S",
                                             "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"};
  for (const char* format : kFormats) {
    auto parts = parse_exact(value, format);
    if (!parts) continue;
    if (utc) return TimePoint(Seconds(timegm(&*parts)));
    return local_to_time_point(*parts);
  }
  return std::nullopt;
}

std::optional<TimePoint> parse_iso8601_utc(std::string_view text) {
  auto parts = parse_exact(std::string(text), "%Y-%m-%dT%H:%M:%SZ");
  if (!parts) return std::nullopt;
  return TimePoint(Seconds(timegm(&*parts)));
}

std::string format_local(TimePoint time, bool with_zone) {
  const std::time_t seconds = static_cast<std::time_t>(time.time_since_epoch().count());
  std::tm parts{};
  if (localtime_r(&seconds, &parts) == nullptr) return std::to_string(seconds);
  char text[64];
  const std::size_t size = std::strftime(
      text, sizeof text, with_zone ? "%Y-%m-%d %H:%M:%S %Z" : "%Y-%m-%d %H:%M:%S", &parts);
  return std::string(text, size);
}

}  // namespace acctlock::cli
