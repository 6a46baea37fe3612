// SPDX-License-Identifier: BSD-3-Clause
// Times as the command reads them (--since) and shows them (local time).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"

namespace acctlock::cli {

// --since TIME. Accepted, as acctlock(8) documents:
//   a duration back from `now`: "2h", "1d", "1h30m", optionally followed by
//     " ago" ("2h ago"); units s, m, h, d as in acctlock.conf;
//   "today", "yesterday": local midnight;
//   a local date or date and time: "2024-05-01", "2024-05-01T08:30",
//     "2024-05-01 08:30:15"; with a trailing "Z" the time is UTC.
// nullopt when the text is none of these.
std::optional<TimePoint> parse_time(std::string_view text, TimePoint now);

// The daemon's "2024-05-01T12:34:56Z", or nullopt if it is not that form.
std::optional<TimePoint> parse_iso8601_utc(std::string_view text);

// "2024-05-01 14:34:56" in the local time zone (with the zone's abbreviation
// appended when `with_zone`).
std::string format_local(TimePoint time, bool with_zone = false);

}  // namespace acctlock::cli
