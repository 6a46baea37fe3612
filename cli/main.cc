// SPDX-License-Identifier: BSD-3-Clause
// acctlock: inspect, lock and unlock accounts through acctlockd's admin
// socket. faillock's flags (--user, --reset, --conf) keep working; the
// subcommands do what faillock cannot. See acctlock(8).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/admin_client.h"
#include "cli/doctor.h"
#include "cli/exit_codes.h"
#include "cli/faillock_format.h"
#include "cli/faillock_tally.h"
#include "cli/time_text.h"
#include "common/escaped_text.h"
#include "common/options.h"

namespace {

using nlohmann::json;
using namespace acctlock;
using namespace acctlock::cli;

constexpr auto kAnswerTimeout = std::chrono::seconds(30);
constexpr std::size_t kRecentFailures = 10;

const char* const kFooter =
    R"(Without a subcommand, acctlock lists every user with failures or a lock;
--user USER shows one user and --user USER --reset clears them (as faillock).

TIME for --since: a duration back from now (2h, 1d, 1h30m, "2h ago"), today,
yesterday, or a local date and time (2024-05-01, 2024-05-01T08:30,
"2024-05-01 08:30:15"; append Z for UTC).

Root and members of admin_socket_group may do everything; other users may only read
their own status and history.

Exit status: 0 success, 1 the daemon could not do it, 2 usage error,
3 no such user (no record and unknown to the system), 4 permission denied,
5 acctlockd unreachable.

See acctlock(8).)";

struct Settings {
  std::string config_path = ACCTLOCK_DEFAULT_CONFIG;
  std::string socket_path;
  bool json_output = false;
};

// The admin socket: --socket, else the config file's admin_socket.
std::string admin_socket_path(const Settings& settings, bool config_given) {
  if (!settings.socket_path.empty()) return settings.socket_path;
  // A missing default file means defaults, as in the daemon; a file named on
  // the command line must be there. Other problems in the file are the
  // daemon's to report: this command needs only one key from it.
  const auto parsed = load_config(settings.config_path, !config_given);
  for (const auto& diagnostic : parsed.diagnostics) {
    if (diagnostic.severity == Diagnostic::Severity::error && diagnostic.line == 0) {
      throw CommandError(kExitUsage, diagnostic.to_string());
    }
  }
  return parsed.options.admin_socket;
}

// Terminal-safe text: control characters from a remote host name or a PAM
// tty field must not reach the terminal as escapes.
// C0 and C1 controls, bidi overrides and non-UTF-8 bytes as visible escapes
// (common/escaped_text.h): a name or reason must not drive the terminal.
std::string printable(const std::string& text) {
  return escaped(text);
}

std::string text_of(const json& value, const char* empty = "-") {
  if (value.is_null()) return empty;
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    return text.empty() ? std::string(empty) : printable(text);
  }
  return value.dump();
}

std::string local_time_of(const json& value, bool with_zone = false) {
  if (!value.is_string()) return "-";
  const auto time = parse_iso8601_utc(value.get<std::string>());
  return time ? format_local(*time, with_zone) : text_of(value);
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  const auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << '\n';
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

// "failures", "manual", ... for a locked user; "-" otherwise.
std::string lock_column(const json& status) {
  return status.value("locked", false) ? text_of(status["lock"]) : "-";
}

std::string until_column(const json& status) {
  if (!status.value("locked", false)) return "-";
  if (status["locked_until"].is_null()) return "until unlocked";
  return local_time_of(status["locked_until"]);
}

// One scope's lock in a line: "locked (failures) until ..., 3 failure(s)".
std::string scope_line(const json& lock) {
  std::string line;
  if (lock.value("locked", false)) {
    line = "locked (" + text_of(lock["lock"]) + ") " +
           (lock["locked_until"].is_null() ? std::string("until an admin unlocks it")
                                           : "until " + local_time_of(lock["locked_until"], true));
  } else {
    line = "not locked";
  }
  return line + ", " + text_of(lock["failures"]) + " failure(s)";
}

// store = postgresql: a host apart from its fleet answers from its own
// view; say so, and how much waits to be replayed.
void print_fleet(const json& answer) {
  if (!answer.contains("fleet") || !answer["fleet"].value("apart", false)) return;
  const json& fleet = answer["fleet"];
  std::cout << "Fleet:                 apart from the fleet's database";
  if (fleet.contains("apart_since")) {
    std::cout << " since " << local_time_of(fleet["apart_since"], true);
  }
  std::cout << "; " << text_of(fleet["outbox_events"])
            << " event(s) kept here, to be replayed when it returns; this is this host's view\n";
  if (fleet.value("started_apart", false)) {
    std::cout << "                       started while the server was away: enforcing with the "
                 "local copy of the fleet's rows\n";
  }
  if (fleet.value("refused", false)) {
    std::cout << "                       the server REFUSES this host: "
              << fleet.value("problem", std::string()) << "\n";
  }
}

void print_status(const json& status) {
  const bool locked = status.value("locked", false);
  // lockout_scope = unfamiliar (a daemon before it sends no such key): the
  // top level is the familiar sources' state.
  const bool scoped = status.value("lockout_scope", "account") == "unfamiliar";
  std::string locked_text = locked ? "yes (" + text_of(status["lock"]) + ")" : "no";
  if (scoped && status.contains("locked_scopes")) {
    const json& scopes = status["locked_scopes"];
    if (scopes.size() == 2) {
      locked_text += ", for familiar and unfamiliar sources";
    } else if (scopes.size() == 1 && scopes[0] == "familiar") {
      locked_text += ", for familiar sources only";
    } else if (scopes.size() == 1) {
      locked_text =
          "yes (" + text_of(status["unfamiliar"]["lock"]) + "), for unfamiliar sources only";
    }
  }
  std::vector<std::vector<std::string>> lines{
      {"User:", text_of(status["user"])},
      {"Locked:", locked_text},
      {"Failures:", text_of(status["failures"]) + (scoped ? " (from familiar sources)" : "")},
      {"Lockout level:", text_of(status["level"])},
      {"Last failure:", local_time_of(status["last_failure"], true)},
  };
  if (locked) {
    lines.push_back({"Locked since:", local_time_of(status["locked_since"], true)});
    lines.push_back({"Locked until:", status["locked_until"].is_null()
                                          ? "until an admin unlocks it"
                                          : local_time_of(status["locked_until"], true)});
  }
  if (status.value("manual", false)) {
    lines.push_back({"Locked by uid:", text_of(status["locked_by_uid"])});
    lines.push_back({"Reason:", text_of(status["reason"])});
  }
  if (scoped) {
    lines.push_back({"Lockout scope:", "unfamiliar"});
    if (status.contains("unfamiliar") && status["unfamiliar"].is_object()) {
      lines.push_back({"Unfamiliar:", scope_line(status["unfamiliar"])});
    }
  }
  if (status.contains("familiar_sources") && !status["familiar_sources"].empty()) {
    std::string label = "Familiar from:";
    for (const auto& source : status["familiar_sources"]) {
      lines.push_back({label, text_of(source["source"]) + ", last login " +
                                  local_time_of(source["last_success"], true)});
      label.clear();
    }
  }
  for (const auto& line : lines) {
    std::cout << line[0] << std::string(16 - line[0].size(), ' ') << line[1] << '\n';
  }
  print_fleet(status);
}

// `list` pages through the daemon's answers (admin protocol 2) and prints
// each page as it comes, so that a million users cost the command one page
// of memory. The table's columns are as wide as the first page needs; a
// longer value later only shifts its own line. --json prints the same single
// document {"users": [...]} as before paging, written out as it arrives.
class UserListPrinter {
 public:
  UserListPrinter(bool as_json, bool locked_only) : as_json_(as_json), locked_only_(locked_only) {}

  void add_page(const json& users) {
    for (const auto& status : users) {
      if (as_json_) {
        std::cout << (printed_ == 0 ? "{\n  \"users\": [\n    " : ",\n    ")
                  << status.dump(-1, ' ', false, json::error_handler_t::replace);
      } else {
        add_row({text_of(status["user"]), lock_column(status), text_of(status["failures"]),
                 text_of(status["level"]), until_column(status), text_of(status["reason"])});
      }
      ++printed_;
    }
    std::cout.flush();
  }

  void finish() {
    if (as_json_) {
      std::cout << (printed_ == 0 ? "{\n  \"users\": []\n}\n" : "\n  ]\n}\n");
    } else if (printed_ == 0) {
      std::cout << (locked_only_ ? "No user is locked.\n" : "No user has failures or a lock.\n");
    }
  }

 private:
  void add_row(const std::vector<std::string>& row) {
    static const std::vector<std::string> header{"USER",  "LOCK",         "FAILURES",
                                                 "LEVEL", "LOCKED UNTIL", "REASON"};
    if (widths_.empty()) {
      // Room for the longest user name Linux allows.
      widths_ = {32, 9, 8, 5, 19, 6};
      for (std::size_t i = 0; i < header.size(); ++i) {
        widths_[i] = std::max(widths_[i], header[i].size());
      }
      print_row(header);
    }
    print_row(row);
  }

  void print_row(const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(row[i].size() < widths_[i] ? widths_[i] - row[i].size() + 2 : 2, ' ');
      }
    }
    std::cout << line << '\n';
  }

  bool as_json_;
  bool locked_only_;
  std::size_t printed_ = 0;
  std::vector<std::size_t> widths_;
};

// `acctlock sources`: one page at a time, like `list`, with the time left
// of each block. --json prints {"sources": [...]}.
std::string time_left_column(const json& source, TimePoint now) {
  if (!source.value("blocked", false)) return "-";
  if (source["blocked_until"].is_null()) return "until unblocked";
  const auto until = parse_iso8601_utc(text_of(source["blocked_until"]));
  if (!until) return text_of(source["blocked_until"]);
  const auto left = *until > now ? *until - now : Seconds::zero();
  return format_duration(std::chrono::duration_cast<Seconds>(left)) + " left";
}

void print_sources(const json& sources, bool blocked_only, TimePoint now) {
  if (sources.empty()) {
    std::cout << (blocked_only ? "No source is blocked.\n"
                               : "No source has failures or a block.\n");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& source : sources) {
    rows.push_back(
        {text_of(source["source"]), source.value("blocked", false) ? text_of(source["lock"]) : "-",
         text_of(source["failures"]), text_of(source["level"]), time_left_column(source, now),
         source.contains("reason") ? text_of(source["reason"]) : "-"});
  }
  print_table({"SOURCE", "BLOCK", "FAILURES", "LEVEL", "TIME LEFT", "REASON"}, rows);
}

// `acctlock status --source ADDR`.
void print_source_status(const json& status) {
  const bool blocked = status.value("blocked", false);
  std::string blocked_text = "no";
  if (status.value("console", false)) {
    blocked_text = "never (the console)";
  } else if (status.value("trusted", false) && !blocked) {
    blocked_text = "never (trusted_sources)";
  } else if (blocked) {
    blocked_text = "yes (" + text_of(status["lock"]) + ")";
    if (text_of(status["blocked_by"]) != text_of(status["source"])) {
      blocked_text += " by the block of " + text_of(status["blocked_by"]);
    }
  }
  std::string times;
  for (const auto& time : status["failure_times"]) {
    times += (times.empty() ? "" : ", ") + local_time_of(time);
  }
  std::vector<std::vector<std::string>> lines{
      {"Source:", text_of(status["source"])},
      {"Blocked:", blocked_text},
      {"Failures:", text_of(status["failures"])},
      {"Failure times:", times.empty() ? "-" : times},
      {"Block level:", text_of(status["level"])},
  };
  if (blocked) {
    lines.push_back({"Blocked since:", local_time_of(status["blocked_since"], true)});
    lines.push_back({"Blocked until:", status["blocked_until"].is_null()
                                           ? "until an admin unblocks it"
                                           : local_time_of(status["blocked_until"], true)});
  }
  if (status.value("manual", false)) {
    lines.push_back({"Blocked by uid:", text_of(status["blocked_by_uid"])});
    lines.push_back({"Reason:", text_of(status["reason"])});
  }
  for (const auto& line : lines) {
    std::cout << line[0] << std::string(16 - line[0].size(), ' ') << line[1] << '\n';
  }
}

// An aggregate history row (acctlock(8), "Bounded history") in words: how
// many events, over which span, and who reported them; empty for a plain
// row. The TIME column shows its last event.
std::string aggregate_summary(const json& entry) {
  const auto first = entry.find("first_time");
  if (first == entry.end() || !first->is_string()) return {};
  const auto events = entry.find("events");
  const std::string count =
      events != entry.end() && events->is_number_unsigned() ? events->dump() : "?";
  std::string text = "aggregate: " + count + " " + text_of(entry["event"]) + " event(s) from " +
                     local_time_of(*first) + " to " + local_time_of(entry["time"]);
  if (text_of(entry["service"]) == "*" && text_of(entry["rhost"]) == "*") {
    text += " from any service and host";
  }
  const auto peer = entry.find("peer_uid");
  if (peer != entry.end() && peer->is_number_unsigned() && peer->get<std::uint64_t>() != 0) {
    text += ", reported by uid " + peer->dump();
  }
  return text;
}

// Whether a history table needs a HOST column: when other hosts write to
// the same history (store = postgresql), or when a row came from another
// host than the answering daemon. A host alone on its SQLite file keeps the
// table it always had.
bool history_shows_host(const json& answer) {
  if (answer.value("shared_store", false)) return true;
  const auto this_host = answer.find("this_host");
  if (this_host == answer.end() || !this_host->is_string()) return false;  // before version 7
  for (const auto& entry : answer["entries"]) {
    const auto host = entry.find("host");
    if (host != entry.end() && host->is_string() && *host != *this_host) return true;
  }
  return false;
}

void print_history(const json& entries, bool with_user = false, bool with_host = false) {
  if (entries.empty()) {
    std::cout << "No matching events.\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& entry : entries) {
    std::string detail = text_of(entry["detail"], "");
    if (!entry["admin_uid"].is_null()) {
      detail = "by uid " + text_of(entry["admin_uid"]) + (detail.empty() ? "" : ": " + detail);
    }
    if (const std::string summary = aggregate_summary(entry); !summary.empty()) {
      detail = summary + (detail.empty() ? "" : "; " + detail);
    }
    rows.push_back({local_time_of(entry["time"]), text_of(entry["event"]),
                    text_of(entry["service"]), text_of(entry["rhost"]), text_of(entry["tty"]),
                    text_of(entry["ruser"]), detail.empty() ? "-" : detail});
    if (with_user) rows.back().insert(rows.back().begin() + 1, text_of(entry["user"]));
    if (with_host) rows.back().insert(rows.back().begin() + 1, text_of(entry["host"]));
  }
  std::vector<std::string> header{"TIME", "EVENT", "SERVICE", "RHOST", "TTY", "RUSER", "DETAIL"};
  if (with_user) header.insert(header.begin() + 1, "USER");
  if (with_host) header.insert(header.begin() + 1, "HOST");
  print_table(header, rows);
}

void print_stats(const json& stats) {
  // With --host (version 7) the history figures are that host's; the lock
  // figures are the store's.
  if (const auto host = stats.find("host"); host != stats.end() && host->is_string()) {
    std::cout << "Failures, lockouts and top lists: host " << text_of(*host) << " only\n\n";
  }
  std::vector<std::string> locked;
  for (const auto& user : stats["locked_users"]) locked.push_back(text_of(user));
  std::string locked_text = text_of(stats["locked_now"]);
  if (!locked.empty()) {
    locked_text += " (";
    for (std::size_t i = 0; i < locked.size(); ++i) locked_text += (i ? ", " : "") + locked[i];
    locked_text += ")";
  }
  std::cout << "Locked now:            " << locked_text << '\n'
            << "Failures, last hour:   " << text_of(stats["failures_last_hour"]) << '\n'
            << "Failures, last day:    " << text_of(stats["failures_last_day"]) << '\n'
            << "Lockouts, last hour:   " << text_of(stats["lockouts_last_hour"]) << '\n'
            << "Lockouts, last day:    " << text_of(stats["lockouts_last_day"]) << '\n';
  if (stats.contains("blocked_sources")) {  // admin protocol 6
    std::cout << "Blocked sources:       " << text_of(stats["blocked_sources"]) << " ("
              << text_of(stats["manual_source_blocks"]) << " by an admin)\n";
  }
  const auto print_top = [](const json& rows, const char* key, const char* title,
                            const char* column) {
    std::cout << '\n' << title << '\n';
    if (rows.empty()) {
      std::cout << "none\n";
      return;
    }
    std::vector<std::vector<std::string>> table;
    for (const auto& row : rows) table.push_back({text_of(row[key]), text_of(row["failures"])});
    print_table({column, "FAILURES"}, table);
  };
  print_top(stats["top_users"], "user", "Most failures in the last day, by user:", "USER");
  // Rows with "source" rank source keys (an IPv6 /64 is one source); an
  // older daemon's rank the rhosts as given.
  const json& top_sources = stats["top_sources"];
  const bool keyed = !top_sources.empty() && top_sources[0].contains("source");
  print_top(top_sources, keyed ? "source" : "rhost",
            "Most failures in the last day, by source:", keyed ? "SOURCE" : "RHOST");
  if (stats.value("top_sources_complete", true) == false) {
    std::cout << "(more sources than the ranking holds failed; one with as few failures as the "
                 "last listed may be missing)\n";
  }
  print_fleet(stats);
}

void print_json(const json& document) {
  std::cout << document.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
}

// A refusal or failure becomes a CommandError carrying the daemon's text and
// the matching exit code.
json call_answer(json answer) {
  const auto result = static_cast<admin::Result>(answer["result"].get<int>());
  if (result != admin::Result::success) {
    throw CommandError(exit_code_for(result), printable(answer["text"].get<std::string>()));
  }
  return answer;
}

// Sends one request, answered as call_answer() says.
json call(AdminClient& client, const std::string& command, const json& arguments) {
  return call_answer(client.request(command, arguments));
}

// As call(), for a command added in admin protocol `version`: an older
// daemon does not know it and answers `unsupported`, which is said plainly.
json call_added_in(AdminClient& client, int version, const std::string& command,
                   const json& arguments) {
  json answer = client.request(command, arguments);
  if (answer.value("result", -1) == static_cast<int>(admin::Result::unsupported)) {
    throw CommandError(kExitFailure, "this acctlockd is too old for " + command +
                                         " (admin protocol " + std::to_string(version) +
                                         "; restart it after an upgrade)");
  }
  return call_answer(std::move(answer));
}

// As call(), for history and stats with "host" (admin protocol 7): an older
// daemon refuses the key as invalid, which is said plainly instead.
json call_with_host(AdminClient& client, const std::string& command, const json& arguments) {
  json answer = client.request(command, arguments);
  const std::string text = answer.value("text", "");
  if (answer.value("result", -1) == static_cast<int>(admin::Result::invalid) &&
      text.find("host") != std::string::npos && text.find("unknown") != std::string::npos) {
    throw CommandError(kExitFailure, "this acctlockd is too old for " + command +
                                         " --host (admin protocol " +
                                         std::to_string(admin::kHostProtocolVersion) +
                                         "; restart it after an upgrade)");
  }
  return call_answer(std::move(answer));
}

// Records per request: each is ~150 bytes of JSON, well inside the admin
// socket's request limit.
constexpr std::size_t kImportBatch = 200;

int import_faillock(const Settings& settings, bool config_given, const std::string& dir,
                    bool dry_run) {
  const TallyDirectory tallies = read_tally_directory(dir);
  for (const std::string& problem : tallies.problems) {
    std::cerr << "acctlock: import-faillock: " << printable(problem) << '\n';
  }
  std::size_t valid = 0;
  std::vector<std::string> users;
  for (const auto& record : tallies.records) {
    valid += record.valid ? 1 : 0;
    if (std::find(users.begin(), users.end(), record.user) == users.end()) {
      users.push_back(record.user);
    }
  }
  const std::string summary = std::to_string(tallies.records.size()) + " record(s) (" +
                              std::to_string(valid) + " still counted) of " +
                              std::to_string(users.size()) + " user(s) from " +
                              std::to_string(tallies.files) + " tally file(s) in " + dir;
  if (dry_run || tallies.records.empty()) {
    if (settings.json_output) {
      print_json(json{{"dry_run", dry_run},
                      {"records", tallies.records.size()},
                      {"valid", valid},
                      {"users", users},
                      {"problems", tallies.problems}});
    } else {
      std::cout << (dry_run ? "Would import " : "Nothing to import: ") << summary << '\n';
    }
    return tallies.problems.empty() ? kExitOk : kExitFailure;
  }

  AdminClient client(admin_socket_path(settings, config_given), kAnswerTimeout);
  for (std::size_t at = 0; at < tallies.records.size(); at += kImportBatch) {
    json batch = json::array();
    for (std::size_t i = at; i < std::min(at + kImportBatch, tallies.records.size()); ++i) {
      const auto& record = tallies.records[i];
      const char* kind = record.kind == TallyRecord::SourceKind::rhost ? "rhost"
                         : record.kind == TallyRecord::SourceKind::tty ? "tty"
                                                                       : "service";
      batch.push_back(json{{"user", record.user},
                           {"time", record.time},
                           {"source", record.source},
                           {"kind", kind},
                           {"valid", record.valid}});
    }
    call(client, "import_faillock", {{"records", std::move(batch)}});
  }
  if (settings.json_output) {
    print_json(json{{"dry_run", false},
                    {"records", tallies.records.size()},
                    {"valid", valid},
                    {"users", users},
                    {"problems", tallies.problems}});
  } else {
    std::cout << "Imported " << summary << '\n';
  }
  return tallies.problems.empty() ? kExitOk : kExitFailure;
}

// Run as `faillock` (a symlink), a bare invocation prints every user's table
// in faillock's format, as faillock does.
bool invoked_as_faillock(const char* argv0) {
  const std::string name = argv0 == nullptr ? "" : argv0;
  const auto slash = name.rfind('/');
  return name.substr(slash == std::string::npos ? 0 : slash + 1) == "faillock";
}

// faillock --user USER: its table, from the user's status and history.
void print_faillock_user(AdminClient& client, const std::string& user) {
  const json status = call(client, "status", {{"user", user}})["arguments"];
  const json history =
      call(client, "history",
           {{"user", user}, {"limit", admin::kDefaultHistoryLimit}})["arguments"]["entries"];
  std::cout << faillock_table(user, history, status.value("failures", 0u));
}

// `acctlock watch`: one line per committed event, flushed at once so that a
// pipe (the Cockpit page, `| grep`) sees each as it happens.
int watch_events(AdminClient& client, bool successes, bool as_json) {
  call(client, "watch", {{"successes", successes}});
  while (const auto event = client.next_streamed()) {
    if (event->contains("overflow")) {
      std::cerr << "acctlock: " << printable(text_of((*event)["text"])) << '\n';
      return kExitFailure;
    }
    if (as_json) {
      std::cout << event->dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
      continue;
    }
    std::cout << local_time_of((*event)["time"]) << ' ' << text_of((*event)["event"])
              << " user=" << printable(text_of((*event)["user"]));
    for (const char* key : {"service", "rhost", "tty"}) {
      const std::string value = text_of((*event)[key], "");
      if (!value.empty()) std::cout << ' ' << key << '=' << printable(value);
    }
    std::cout << " failures=" << text_of((*event)["failures"]);
    if (!(*event)["locked_until"].is_null()) {
      std::cout << " until=\"" << local_time_of((*event)["locked_until"]) << '"';
    }
    const std::string detail = text_of((*event)["detail"], "");
    if (!detail.empty()) std::cout << " detail=\"" << printable(detail) << '"';
    std::cout << std::endl;
  }
  std::cerr << "acctlock: acctlockd closed the connection\n";
  return kExitUnreachable;
}

int doctor(const DoctorInputs& inputs, bool as_json) {
  const auto findings = run_doctor(inputs);
  std::size_t problems = 0;
  std::size_t warnings = 0;
  json listed = json::array();
  for (const auto& finding : findings) {
    problems += finding.severity == Finding::Severity::problem ? 1 : 0;
    warnings += finding.severity == Finding::Severity::warning ? 1 : 0;
    listed.push_back(json{{"severity", severity_name(finding.severity)},
                          {"where", finding.where},
                          {"text", finding.text}});
    if (!as_json) {
      std::cout << severity_name(finding.severity) << ": " << printable(finding.where) << ": "
                << printable(finding.text) << '\n';
    }
  }
  if (as_json) {
    print_json(
        json{{"findings", std::move(listed)}, {"problems", problems}, {"warnings", warnings}});
  } else {
    std::cout << problems << " problem(s), " << warnings << " warning(s)\n";
  }
  return problems == 0 ? kExitOk : kExitFailure;
}

int run(int argc, char** argv) {
  const bool as_faillock = argc > 0 && invoked_as_faillock(argv[0]);
  CLI::App app{"acctlock: inspect, lock and unlock accounts managed by acctlockd", "acctlock"};
  app.footer(kFooter);
  // Global flags may come after the subcommand too: `acctlock status alice --json`.
  app.fallthrough();
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("acctlock ") + ACCTLOCK_VERSION);

  Settings settings;
  std::string faillock_user;
  bool faillock_reset = false;
  auto* config_option = app.add_option("-c,--config,--conf", settings.config_path,
                                       "Configuration file that names the admin socket")
                            ->capture_default_str();
  app.add_option("--socket", settings.socket_path,
                 "Admin socket to use instead of the configuration's admin_socket");
  app.add_flag("--json", settings.json_output, "Print one JSON document instead of tables");
  app.add_option("-u,--user", faillock_user, "Show this user's status and recent failures");
  app.add_flag("-r,--reset", faillock_reset,
               "Clear the failures and lift any lock of --user USER, or of every user");
  std::string faillock_dir;
  app.add_option("--dir", faillock_dir,
                 "faillock's tally directory: accepted and ignored (acctlockd holds the state)");

  std::string user;
  std::string source_text;
  auto* status_command = app.add_subcommand(
      "status", "Show whether USER (or --source ADDR) is locked, why, until when");
  auto* status_user = status_command->add_option("user", user, "User name");
  status_command
      ->add_option("--source", source_text,
                   "A source instead: address, CIDR prefix, host or local:USER")
      ->excludes(status_user);

  std::string reason;
  std::string lock_for;
  auto* lock_command = app.add_subcommand(
      "lock", "Lock USER (or block --source ADDR|CIDR) until an admin unlocks it, or for DURATION");
  auto* lock_user = lock_command->add_option("user", user, "User name");
  lock_command
      ->add_option("--source", source_text,
                   "Block logins from this address, CIDR prefix, host or local:USER to every "
                   "account instead")
      ->excludes(lock_user);
  lock_command->add_option("--reason", reason, "Why; shown to admins and in the history");
  lock_command->add_option("--for", lock_for,
                           "End the lock by itself after DURATION (90s, 15m, 2h, 1d, 1h30m)");

  bool unlock_all = false;
  auto* unlock_command =
      app.add_subcommand("unlock", "Lift any lock on USER (or --all) and clear its failures");
  auto* unlock_user = unlock_command->add_option("user", user, "User name");
  unlock_command->add_flag("--all", unlock_all, "Every user with failures or a lock")
      ->excludes(unlock_user);

  auto* unlock_source_option = unlock_command->add_option(
      "--source", source_text, "Lift the block of SOURCE (as acctlock sources shows it)");
  unlock_source_option->excludes(unlock_user);
  auto* unblock_command =
      app.add_subcommand("unblock", "Lift the block of SOURCE and clear its failures");
  unblock_command->add_option("source", source_text, "Address, IPv6 prefix, host or local:USER")
      ->required();

  bool blocked_only = false;
  auto* sources_command =
      app.add_subcommand("sources", "List sources (addresses) with failures or a block");
  sources_command->add_flag("--blocked", blocked_only, "Only sources that are blocked now");

  bool locked_only = false;
  std::size_t list_limit = 0;
  std::string list_after;
  auto* list_command = app.add_subcommand("list", "List users with failures or a lock");
  list_command->add_flag("--locked", locked_only, "Only users that are locked now");
  list_command->add_option("--limit", list_limit, "At most N users (default: all)")
      ->check(CLI::PositiveNumber);
  list_command->add_option("--after", list_after, "Only users whose names sort after NAME");
  // Taken only to refuse it with the reason (acctlock(8)), hidden from --help.
  std::string list_host;
  list_command->add_option("--host", list_host)->group("");

  bool failed_only = false;
  std::string since_text;
  std::size_t limit = admin::kDefaultHistoryLimit;
  std::string history_host;
  auto* history_command = app.add_subcommand(
      "history", "Show USER's (or everyone's) logins and lock events, newest first");
  history_command->add_option("user", user, "User name; without it, every user");
  history_command->add_flag("--failed", failed_only, "Only failed logins");
  history_command->add_option("--since", since_text, "Only events at or after TIME");
  history_command->add_option("--limit", limit, "At most N events")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, admin::kMaxHistoryLimit));
  history_command->add_option("--host", history_host,
                              "Only events recorded by host NAME (its host_name)");

  std::string import_dir;
  bool import_dry_run = false;
  auto* import_command = app.add_subcommand(
      "import-faillock", "Bring pam_faillock's tallies over: history, counts and locks");
  import_command->add_option("--dir", import_dir,
                             "Tally directory (default: the configuration's dir, "
                             "/var/run/faillock)");
  import_command->add_flag("--dry-run", import_dry_run, "Read and report, change nothing");

  auto* stats_command =
      app.add_subcommand("stats", "Locks now, failures and lockouts lately, top users and sources");
  std::string stats_host;
  stats_command->add_option("--host", stats_host,
                            "Failures, lockouts and top lists of host NAME's events only");

  auto* watch_command = app.add_subcommand(
      "watch", "Print lock events as acctlockd commits them, until interrupted (admins only)");
  bool watch_successes = false;
  watch_command->add_flag("--successes", watch_successes, "Successful logins too");

  std::string pam_dir = "/etc/pam.d";
  auto* doctor_command = app.add_subcommand(
      "doctor",
      "Check the configuration, sockets, database, daemon and PAM stacks; exit 1 on a problem");
  doctor_command->add_option("--pam-dir", pam_dir, "PAM configuration directory to check")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "acctlock: " << e.what() << " (see acctlock --help)\n";
    return kExitUsage;
  }

  const bool any_subcommand = !app.get_subcommands().empty();
  if ((status_command->parsed() || lock_command->parsed()) && user.empty() &&
      source_text.empty()) {
    std::cerr << "acctlock: " << (status_command->parsed() ? "status" : "lock")
              << " needs a USER or --source ADDR (see acctlock "
              << (status_command->parsed() ? "status" : "lock") << " --help)\n";
    return kExitUsage;
  }
  if (unlock_command->parsed() && user.empty() && !unlock_all && source_text.empty()) {
    std::cerr << "acctlock: unlock needs a USER or --all (see acctlock unlock --help)\n";
    return kExitUsage;
  }
  if (any_subcommand && (!faillock_user.empty() || faillock_reset)) {
    std::cerr << "acctlock: --user is faillock's form; it does not combine with a subcommand "
                 "(see acctlock --help)\n";
    return kExitUsage;
  }
  if (list_command->parsed() && list_command->count("--host") > 0) {
    std::cerr << "acctlock: list shows lock state, which belongs to no host: with store = "
                 "postgresql every host shares it. For what one host recorded, use acctlock "
                 "history --host NAME (see acctlock(8))\n";
    return kExitUsage;
  }
  for (const auto& [command, host] :
       {std::pair{history_command, &history_host}, std::pair{stats_command, &stats_host}}) {
    if (command->parsed() && command->count("--host") > 0 && host->empty()) {
      std::cerr << "acctlock: --host needs a host name (see acctlock " << command->get_name()
                << " --help)\n";
      return kExitUsage;
    }
  }
  std::optional<TimePoint> since;
  if (!since_text.empty()) {
    since = parse_time(since_text, wall_clock_now());
    if (!since) {
      std::cerr << "acctlock: --since: cannot read \"" << since_text
                << "\" as a time (see acctlock --help)\n";
      return kExitUsage;
    }
  }

  std::optional<Seconds> lock_for_seconds;
  if (!lock_for.empty()) {
    lock_for_seconds = parse_duration(lock_for);
    if (!lock_for_seconds || *lock_for_seconds <= Seconds::zero()) {
      std::cerr << "acctlock: --for: \"" << lock_for
                << "\" is not a duration such as 90s, 15m, 2h, 1d or 1h30m (see acctlock lock "
                   "--help)\n";
      return kExitUsage;
    }
  }

  if (import_command->parsed()) {
    if (import_dir.empty()) {
      import_dir =
          load_config(settings.config_path, config_option->count() == 0).options.faillock_dir;
    }
    return import_faillock(settings, config_option->count() > 0, import_dir, import_dry_run);
  }

  if (doctor_command->parsed()) {
    return doctor(DoctorInputs{settings.config_path, config_option->count() > 0,
                               settings.socket_path, pam_dir},
                  settings.json_output);
  }

  const std::string socket_path = admin_socket_path(settings, config_option->count() > 0);
  AdminClient client(socket_path, kAnswerTimeout);
  const bool as_json = settings.json_output;

  if (status_command->parsed() && !source_text.empty()) {
    const json answer = call_added_in(client, admin::kSourceBlocksProtocolVersion,
                                      "source_status", {{"source", source_text}});
    as_json ? print_json(answer["arguments"]) : print_source_status(answer["arguments"]);
  } else if (lock_command->parsed() && !source_text.empty()) {
    json arguments{{"source", source_text}, {"reason", reason}};
    if (lock_for_seconds) arguments["for"] = lock_for_seconds->count();
    // An older daemon does not know lock_source and blocks nothing.
    const json answer = call_added_in(client, admin::kSourceBlocksProtocolVersion, "lock_source",
                                      arguments);
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if (status_command->parsed()) {
    const json answer = call(client, "status", {{"user", user}});
    as_json ? print_json(answer["arguments"]) : print_status(answer["arguments"]);
  } else if (lock_command->parsed()) {
    json arguments{{"user", user}, {"reason", reason}};
    if (lock_for_seconds) {
      // An older daemon ignores "for" and would lock until an unlock.
      const json version = client.request("version", json::object());
      if (version.value("result", -1) != static_cast<int>(admin::Result::success) ||
          version["arguments"].value("admin_protocol", 0) < 3) {
        throw CommandError(kExitFailure,
                           "this acctlockd is too old for lock --for (restart it after an "
                           "upgrade); nothing was locked");
      }
      arguments["for"] = lock_for_seconds->count();
    }
    const json answer = call(client, "lock", arguments);
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if ((unlock_command->parsed() && unlock_all) ||
             (faillock_reset && faillock_user.empty())) {
    const json answer = call(client, "unlock_all", json::object());
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if (unblock_command->parsed() || (unlock_command->parsed() && !source_text.empty())) {
    const json answer = call_added_in(client, admin::kSourcesProtocolVersion, "unlock_source",
                                      {{"source", source_text}});
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if (sources_command->parsed()) {
    // Pages of kMaxListLimit, gathered: the table is bounded by
    // max_tracked_sources.
    json all = json::array();
    std::optional<std::string> after = std::string();
    while (after) {
      const json answer = call_added_in(
          client, admin::kSourcesProtocolVersion, "sources",
          {{"blocked", blocked_only}, {"limit", admin::kMaxListLimit}, {"after", *after}});
      for (const auto& source : answer["arguments"]["sources"]) all.push_back(source);
      const json& next = answer["arguments"]["next"];
      after.reset();
      if (next.is_string()) after = next.get<std::string>();
    }
    as_json ? print_json(json{{"sources", all}})
            : print_sources(all, blocked_only, wall_clock_now());
  } else if (unlock_command->parsed()) {
    const json answer = call(client, "unlock", {{"user", user}});
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if (history_command->parsed()) {
    json arguments{{"failed", failed_only}, {"limit", limit}};
    if (!user.empty()) arguments["user"] = user;
    if (since) arguments["since"] = since->time_since_epoch().count();
    if (!history_host.empty()) arguments["host"] = history_host;
    const json answer = history_host.empty() ? call(client, "history", arguments)
                                             : call_with_host(client, "history", arguments);
    as_json ? print_json(answer["arguments"])
            : print_history(answer["arguments"]["entries"], user.empty(),
                            history_shows_host(answer["arguments"]));
  } else if (stats_command->parsed()) {
    const json answer = stats_host.empty()
                            ? call(client, "stats", json::object())
                            : call_with_host(client, "stats", {{"host", stats_host}});
    as_json ? print_json(answer["arguments"]) : print_stats(answer["arguments"]);
  } else if (watch_command->parsed()) {
    return watch_events(client, watch_successes, as_json);
  } else if (!faillock_user.empty() && faillock_reset) {
    const json answer = call(client, "reset", {{"user", faillock_user}});
    as_json ? print_json(answer["arguments"])
            : void(std::cout << answer["text"].get<std::string>() << '\n');
  } else if (!faillock_user.empty()) {
    json status = call(client, "status", {{"user", faillock_user}})["arguments"];
    const json failures = call(client, "history",
                               {{"user", faillock_user},
                                {"failed", true},
                                {"limit", kRecentFailures}})["arguments"]["entries"];
    if (as_json) {
      status["recent_failures"] = failures;
      print_json(status);
    } else {
      print_faillock_user(client, faillock_user);
    }
  } else if (as_faillock && !as_json) {
    const json list = call(client, "list", {{"locked", false}});
    for (const auto& status : list["arguments"]["users"]) {
      print_faillock_user(client, status["user"].get<std::string>());
    }
  } else {
    const bool locked = list_command->parsed() && locked_only;
    UserListPrinter printer(as_json, locked);
    std::optional<std::string> after = list_after;
    std::size_t left = list_limit;  // 0: no limit
    while (after) {
      const std::size_t page =
          left == 0 ? admin::kMaxListLimit : std::min<std::size_t>(left, admin::kMaxListLimit);
      const json answer =
          call(client, "list", {{"locked", locked}, {"limit", page}, {"after", *after}});
      const json& users = answer["arguments"]["users"];
      printer.add_page(users);
      if (left != 0) left -= std::min(left, users.size());
      const json& next = answer["arguments"]["next"];
      after.reset();
      if (next.is_string() && !users.empty() && (list_limit == 0 || left > 0)) after = next;
    }
    printer.finish();
  }
  return kExitOk;
}

// With --json a script reads stdout as JSON, also when the command fails:
// the error goes there as {"error": TEXT, "exit_code": N} as well as to
// stderr.
int fail(int argc, char** argv, const std::string& text, int exit_code) {
  std::cerr << "acctlock: " << text << '\n';
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--json") {
      print_json(json{{"error", text}, {"exit_code", exit_code}});
      break;
    }
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const CommandError& e) {
    return fail(argc, argv, e.what(), e.exit_code());
  } catch (const std::exception& e) {
    return fail(argc, argv, e.what(), kExitFailure);
  }
}
