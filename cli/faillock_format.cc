// SPDX-License-Identifier: BSD-3-Clause
#include "cli/faillock_format.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/time_text.h"

namespace acctlock::cli {
namespace {

std::string field(const nlohmann::json& entry, const char* key) {
  const auto found = entry.find(key);
  if (found == entry.end() || !found->is_string()) return {};
  std::string text = found->get<std::string>();
  // faillock prints its fields raw; a terminal escape from a remote host
  // name must not reach the terminal here either.
  for (char& c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return text;
}

// Events that empty pam_faillock's tally: older failures are not shown.
bool ends_the_tally(const std::string& event) {
  return event == "success" || event == "reset" || event == "unlocked" ||
         event == "password_changed";
}

}  // namespace

std::string faillock_table(const std::string& user, const nlohmann::json& history,
                           unsigned failures) {
  struct Row {
    std::string when, type, source;
    bool valid;
  };
  std::vector<Row> rows;  // newest first while collecting
  unsigned valid_left = failures;
  for (const auto& entry : history) {
    const std::string event = field(entry, "event");
    if (ends_the_tally(event)) break;
    if (event != "failure" && event != "locked") continue;
    const auto time = parse_iso8601_utc(field(entry, "time"));
    Row row{time ? format_local(*time) : field(entry, "time"), "", "", false};
    if (const auto rhost = field(entry, "rhost"); !rhost.empty()) {
      row.type = "RHOST";
      row.source = rhost;
    } else if (const auto tty = field(entry, "tty"); !tty.empty()) {
      row.type = "TTY";
      row.source = tty;
    } else {
      row.type = "SVC";
      row.source = field(entry, "service");
    }
    // An aggregate row (acctlock(8), "Bounded history") stands for several
    // failures: one line, saying how many since when.
    std::uint64_t events = 1;
    if (const auto first = field(entry, "first_time"); !first.empty()) {
      const auto found = entry.find("events");
      if (found != entry.end() && found->is_number_unsigned()) {
        events = std::max<std::uint64_t>(found->get<std::uint64_t>(), 1);
      }
      const auto since = parse_iso8601_utc(first);
      row.source +=
          " (" + std::to_string(events) + " since " + (since ? format_local(*since) : first) + ")";
    }
    const bool counted = field(entry, "detail") != "while locked";
    if (counted && valid_left > 0) {
      row.valid = true;
      valid_left -= static_cast<unsigned>(std::min<std::uint64_t>(events, valid_left));
    }
    rows.push_back(std::move(row));
  }
  std::reverse(rows.begin(), rows.end());

  std::string out = user + ":\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-19s %-5s %-48s %-5s\n", "When", "Type", "Source", "Valid");
  out += line;
  for (const Row& row : rows) {
    std::snprintf(line, sizeof line, "%-19s %-5s %-52.52s %s\n", row.when.c_str(), row.type.c_str(),
                  row.source.c_str(), row.valid ? "V" : "I");
    out += line;
  }
  return out;
}

}  // namespace acctlock::cli
