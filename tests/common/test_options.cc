// SPDX-License-Identifier: BSD-3-Clause
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/options.h"

namespace acctlock {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using namespace std::chrono_literals;

constexpr std::string_view kFile = "acctlock.conf";

void expect_same_options(const Options& actual, const Options& expected) {
  const LockoutRules& a = actual.rules;
  const LockoutRules& e = expected.rules;
  EXPECT_EQ(a.deny, e.deny);
  EXPECT_EQ(a.fail_interval, e.fail_interval);
  EXPECT_EQ(a.fail_window, e.fail_window);
  EXPECT_EQ(a.unlock_time, e.unlock_time);
  EXPECT_EQ(a.lockout_multiplier, e.lockout_multiplier);
  EXPECT_EQ(a.max_unlock_time, e.max_unlock_time);
  EXPECT_EQ(a.lockout_memory, e.lockout_memory);
  EXPECT_EQ(a.permanent_after, e.permanent_after);
  EXPECT_EQ(a.even_deny_root, e.even_deny_root);
  EXPECT_EQ(a.root_unlock_time, e.root_unlock_time);
  EXPECT_EQ(actual.admin_group, expected.admin_group);
  EXPECT_EQ(actual.history_retention, expected.history_retention);
  EXPECT_EQ(actual.event_socket, expected.event_socket);
  EXPECT_EQ(actual.admin_socket, expected.admin_socket);
  EXPECT_EQ(actual.database, expected.database);
  EXPECT_EQ(actual.max_connections, expected.max_connections);
  EXPECT_EQ(actual.root_reserved_connections, expected.root_reserved_connections);
  EXPECT_EQ(actual.max_connections_per_uid, expected.max_connections_per_uid);
  EXPECT_EQ(actual.max_requests_per_uid, expected.max_requests_per_uid);
  EXPECT_EQ(actual.silent, expected.silent);
  EXPECT_EQ(actual.debug, expected.debug);
  EXPECT_EQ(actual.timeout, expected.timeout);
  EXPECT_EQ(actual.on_unavailable, expected.on_unavailable);
  EXPECT_EQ(actual.account_deny_locked, expected.account_deny_locked);
  EXPECT_EQ(actual.admin_socket_group, expected.admin_socket_group);
  EXPECT_EQ(actual.exempt_group, expected.exempt_group);
  EXPECT_EQ(actual.faillock_dir, expected.faillock_dir);
  EXPECT_EQ(actual.local_users_only, expected.local_users_only);
  EXPECT_EQ(actual.nodelay, expected.nodelay);
  EXPECT_EQ(actual.audit, expected.audit);
  EXPECT_EQ(actual.no_log_info, expected.no_log_info);
  EXPECT_EQ(actual.keep_lock_on_password_change, expected.keep_lock_on_password_change);
  const SourceRules& as = actual.source_rules;
  const SourceRules& es = expected.source_rules;
  EXPECT_EQ(as.deny, es.deny);
  EXPECT_EQ(as.fail_interval, es.fail_interval);
  EXPECT_EQ(as.unlock_time, es.unlock_time);
  EXPECT_EQ(as.lockout_multiplier, es.lockout_multiplier);
  EXPECT_EQ(as.max_unlock_time, es.max_unlock_time);
  EXPECT_EQ(as.lockout_memory, es.lockout_memory);
  EXPECT_EQ(as.prefix_v6, es.prefix_v6);
  EXPECT_EQ(as.trusted, es.trusted);
  EXPECT_EQ(actual.familiar_sources.scope, expected.familiar_sources.scope);
  EXPECT_EQ(actual.familiar_sources.max_per_user, expected.familiar_sources.max_per_user);
  EXPECT_EQ(actual.max_tracked_sources, expected.max_tracked_sources);
  EXPECT_EQ(actual.spray, expected.spray);
  EXPECT_EQ(actual.familiar_sources.memory, expected.familiar_sources.memory);
}

std::vector<std::string> diagnostic_texts(const ParsedConfig& parsed) {
  std::vector<std::string> texts;
  for (const Diagnostic& d : parsed.diagnostics) texts.push_back(d.to_string());
  return texts;
}

// Parses `text` and expects it to be clean.
Options parse_ok(std::string_view text) {
  const ParsedConfig parsed = parse_config(text, kFile);
  EXPECT_THAT(diagnostic_texts(parsed), IsEmpty()) << "while parsing: " << text;
  return parsed.options;
}

// Parses `text` and expects exactly one diagnostic, which it returns.
Diagnostic parse_one_diagnostic(std::string_view text, Options base = {}) {
  const ParsedConfig parsed = parse_config(text, kFile, std::move(base));
  EXPECT_THAT(parsed.diagnostics, SizeIs(1)) << "while parsing: " << text;
  return parsed.diagnostics.empty() ? Diagnostic{} : parsed.diagnostics.front();
}

// The error for `key = value` on line 1, after checking it names file, line
// and key and leaves the options at their defaults.
std::string value_error(std::string_view key, std::string_view value) {
  const std::string text = std::string(key) + " = " + std::string(value) + "\n";
  const ParsedConfig parsed = parse_config(text, kFile);
  EXPECT_THAT(parsed.diagnostics, SizeIs(1)) << "while parsing: " << text;
  if (parsed.diagnostics.empty()) return {};
  const Diagnostic& d = parsed.diagnostics.front();
  EXPECT_EQ(d.severity, Diagnostic::Severity::error);
  EXPECT_EQ(d.file, kFile);
  EXPECT_EQ(d.line, 1u);
  EXPECT_EQ(d.key, key);
  expect_same_options(parsed.options, Options{});
  return d.message;
}

// ---------------------------------------------------------------------------
// The table

TEST(OptionTable, NamesAreUniqueAndEveryEntryIsDocumented) {
  std::set<std::string_view> names;
  for (const OptionInfo& info : option_table()) {
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate key " << info.name;
    EXPECT_FALSE(info.default_text.empty()) << info.name;
    EXPECT_FALSE(info.meaning.empty()) << info.name;
    EXPECT_EQ(info.is_flag, info.syntax.empty()) << info.name;
  }
  EXPECT_EQ(names.size(), 53u);
}

TEST(OptionTable, EveryTableKeyIsKnownToTheSetter) {
  for (const OptionInfo& info : option_table()) {
    Options options;
    std::string error;
    EXPECT_NE(set_option(options, info.name, std::nullopt, &error), SetResult::unknown_key)
        << info.name;
  }
}

TEST(OptionTable, ConcreteDefaultTextsParseToTheDefaults) {
  // Defaults written in <angle brackets> describe an absent value.
  for (const OptionInfo& info : option_table()) {
    if (info.default_text.starts_with('<')) continue;
    Options options;
    std::string error;
    EXPECT_EQ(set_option(options, info.name, info.default_text, &error), SetResult::ok)
        << info.name << ": " << error;
    expect_same_options(options, Options{});
  }
}

// ---------------------------------------------------------------------------
// Each key

TEST(OptionKeys, Deny) {
  EXPECT_EQ(parse_ok("deny = 5").rules.deny, 5u);
  EXPECT_EQ(parse_ok("deny = 1").rules.deny, 1u);
  // The sliding window keeps up to deny failure times per user: bounded.
  EXPECT_EQ(parse_ok("deny = 1000").rules.deny, kMaxDeny);
  EXPECT_THAT(value_error("deny", "1001"), HasSubstr("is too large"));
  EXPECT_EQ(value_error("deny", "0"), "\"0\" is not a whole number from 1 to 1000");
  EXPECT_EQ(value_error("deny", "abc"), "\"abc\" is not a whole number from 1 to 1000");
  EXPECT_EQ(value_error("deny", "-1"), "\"-1\" is not a whole number from 1 to 1000");
  EXPECT_EQ(value_error("deny", "+3"), "\"+3\" is not a whole number from 1 to 1000");
  EXPECT_EQ(value_error("deny", "3.0"), "\"3.0\" is not a whole number from 1 to 1000");
  EXPECT_THAT(value_error("deny", "4294967296"), HasSubstr("is too large"));
  EXPECT_THAT(value_error("deny", "99999999999999999999999"), HasSubstr("is too large"));
}

TEST(OptionKeys, FailWindow) {
  EXPECT_EQ(Options{}.rules.fail_window, FailWindow::sliding) << "pam_faillock's, the default";
  EXPECT_EQ(parse_ok("fail_window = chained").rules.fail_window, FailWindow::chained);
  EXPECT_EQ(parse_ok("fail_window = sliding").rules.fail_window, FailWindow::sliding);
  EXPECT_EQ(value_error("fail_window", "Sliding"), "\"Sliding\" is not sliding or chained");
  EXPECT_EQ(value_error("fail_window", "window"), "\"window\" is not sliding or chained");
}

TEST(OptionKeys, FailInterval) {
  EXPECT_EQ(parse_ok("fail_interval = 30m").rules.fail_interval, 1800s);
  EXPECT_EQ(parse_ok("fail_interval = 1").rules.fail_interval, 1s);
  EXPECT_THAT(value_error("fail_interval", "0"), HasSubstr("is not a duration greater than 0"));
  EXPECT_THAT(value_error("fail_interval", "never"), HasSubstr("is not a duration"));
}

TEST(OptionKeys, UnlockTimeAcceptsZeroAndNever) {
  EXPECT_EQ(parse_ok("unlock_time = 1h").rules.unlock_time, 3600s);
  EXPECT_EQ(parse_ok("unlock_time = 0").rules.unlock_time, 0s);
  EXPECT_EQ(parse_ok("unlock_time = never").rules.unlock_time, 0s);
  EXPECT_THAT(value_error("unlock_time", "forever"), HasSubstr("a duration or \"never\""));
}

TEST(OptionKeys, LockoutMultiplier) {
  EXPECT_EQ(parse_ok("lockout_multiplier = 1.5").rules.lockout_multiplier, 1.5);
  EXPECT_EQ(parse_ok("lockout_multiplier = 1").rules.lockout_multiplier, 1.0);
  EXPECT_EQ(parse_ok("lockout_multiplier = 100").rules.lockout_multiplier, 100.0);
  for (std::string_view bad : {"0.99", "100.5", "1,5", "inf", "nan", "1e2", "-2", "x", "2x"}) {
    EXPECT_THAT(value_error("lockout_multiplier", bad), HasSubstr("is not a decimal number"))
        << bad;
  }
}

TEST(OptionKeys, MaxUnlockTime) {
  EXPECT_EQ(parse_ok("max_unlock_time = 2d").rules.max_unlock_time, 2 * 86400s);
  EXPECT_THAT(value_error("max_unlock_time", "0"), HasSubstr("greater than 0"));
}

TEST(OptionKeys, LockoutMemoryAcceptsZeroButNotNever) {
  EXPECT_EQ(parse_ok("lockout_memory = 12h").rules.lockout_memory, 12 * 3600s);
  EXPECT_EQ(parse_ok("lockout_memory = 0").rules.lockout_memory, 0s);
  // "never" reads as 0 only where 0 means "until an admin acts"; here it
  // would be misread as "never forget".
  EXPECT_THAT(value_error("lockout_memory", "never"), HasSubstr("is not a duration"));
}

TEST(OptionKeys, PermanentAfter) {
  EXPECT_EQ(parse_ok("permanent_after = 3").rules.permanent_after, 3u);
  Options base;
  base.rules.permanent_after = 3;
  EXPECT_EQ(parse_config("permanent_after = 0", kFile, base).options.rules.permanent_after, 0u);
  EXPECT_THAT(value_error("permanent_after", "off"), HasSubstr("is not a whole number"));
}

TEST(OptionKeys, RootUnlockTimeDefaultsToUnlockTime) {
  const Options defaults = parse_ok("unlock_time = 20m");
  EXPECT_FALSE(defaults.rules.root_unlock_time.has_value());
  EXPECT_EQ(defaults.rules.effective_root_unlock_time(), 1200s);

  const Options set = parse_ok("unlock_time = 20m\nroot_unlock_time = 5m");
  EXPECT_EQ(set.rules.root_unlock_time, 300s);
  EXPECT_EQ(set.rules.effective_root_unlock_time(), 300s);

  EXPECT_EQ(parse_ok("root_unlock_time = never").rules.root_unlock_time, 0s);
  EXPECT_THAT(value_error("root_unlock_time", "soon"), HasSubstr("is not a duration"));
}

TEST(OptionKeys, AdminGroupAllowsSpacesButNotColons) {
  EXPECT_EQ(parse_ok("admin_group = wheel").admin_group, "wheel");
  EXPECT_EQ(parse_ok("admin_group = domain admins").admin_group, "domain admins");
  EXPECT_EQ(value_error("admin_group", "a:b"), "\"a:b\" is not a group name");
}

TEST(OptionKeys, HistoryRetention) {
  EXPECT_EQ(parse_ok("history_retention = 90d").history_retention, 90 * 86400s);
  EXPECT_THAT(value_error("history_retention", "0"), HasSubstr("greater than 0"));
}

TEST(OptionKeys, SocketPathsMustBeAbsoluteAndFitSunPath) {
  EXPECT_EQ(parse_ok("event_socket = /tmp/e.sock").event_socket, "/tmp/e.sock");
  EXPECT_EQ(parse_ok("admin_socket = /tmp/a.sock").admin_socket, "/tmp/a.sock");

  const std::string longest = "/" + std::string(106, 's');  // 107 bytes + NUL fill sun_path
  EXPECT_EQ(parse_ok("event_socket = " + longest).event_socket, longest);
  for (std::string_view key : {"event_socket", "admin_socket"}) {
    EXPECT_EQ(value_error(key, "run/x.sock"), "\"run/x.sock\" is not an absolute path");
    EXPECT_THAT(value_error(key, longest + "s"),
                HasSubstr("is longer than 107 bytes, the limit for a Unix socket path"));
  }
}

TEST(OptionKeys, DatabaseMayContainSpacesAndHashes) {
  EXPECT_EQ(parse_ok("database = /srv/acct lock/state.db").database, "/srv/acct lock/state.db");
  // '#' only starts a comment at the start of a line or after whitespace.
  EXPECT_EQ(parse_ok("database = /srv/a#b.db").database, "/srv/a#b.db");
  EXPECT_EQ(value_error("database", "state.db"), "\"state.db\" is not an absolute path");
}

TEST(OptionKeys, TimeoutMs) {
  EXPECT_EQ(parse_ok("timeout_ms = 1").timeout, 1ms);
  EXPECT_EQ(parse_ok("timeout_ms = 60000").timeout, 60000ms);
  EXPECT_EQ(value_error("timeout_ms", "0"),
            "\"0\" is not a whole number of milliseconds from 1 to 60000");
  EXPECT_THAT(value_error("timeout_ms", "60001"), HasSubstr("is too large"));
  EXPECT_THAT(value_error("timeout_ms", "2s"), HasSubstr("is not a whole number"));
}

TEST(OptionKeys, OnUnavailable) {
  EXPECT_EQ(parse_ok("on_unavailable = deny").on_unavailable, UnavailableAction::deny);
  Options base;
  base.on_unavailable = UnavailableAction::deny;
  EXPECT_EQ(parse_config("on_unavailable = allow", kFile, base).options.on_unavailable,
            UnavailableAction::allow);
  EXPECT_EQ(value_error("on_unavailable", "Deny"), "\"Deny\" is not allow or deny");
}

// Every flag, through one accessor per key, so no flag escapes the checks.
struct FlagCase {
  std::string_view key;
  bool Options::*member;  // nullptr for the one flag inside LockoutRules
};

bool flag_value(const Options& options, const FlagCase& flag) {
  return flag.member != nullptr ? options.*flag.member : options.rules.even_deny_root;
}

const FlagCase kFlags[] = {
    {"even_deny_root", nullptr},
    {"silent", &Options::silent},
    {"debug", &Options::debug},
    {"account_deny_locked", &Options::account_deny_locked},
    {"keep_lock_on_password_change", &Options::keep_lock_on_password_change},
    {"local_users_only", &Options::local_users_only},
    {"nodelay", &Options::nodelay},
    {"audit", &Options::audit},
    {"no_log_info", &Options::no_log_info},
};

TEST(OptionKeys, EveryFlagIsAFlagInTheTable) {
  std::set<std::string_view> table_flags;
  for (const OptionInfo& info : option_table()) {
    if (info.is_flag) table_flags.insert(info.name);
  }
  std::set<std::string_view> tested;
  for (const FlagCase& flag : kFlags) tested.insert(flag.key);
  EXPECT_EQ(table_flags, tested);
}

TEST(OptionKeys, FlagsAcceptBareWordsAndBooleans) {
  for (const FlagCase& flag : kFlags) {
    SCOPED_TRACE(flag.key);
    const std::string key(flag.key);
    EXPECT_FALSE(flag_value(Options{}, flag));
    EXPECT_TRUE(flag_value(parse_ok(key), flag));
    for (std::string_view yes : {"yes", "true", "1"}) {
      EXPECT_TRUE(flag_value(parse_ok(key + " = " + std::string(yes)), flag)) << yes;
    }
    for (std::string_view no : {"no", "false", "0"}) {
      EXPECT_FALSE(flag_value(parse_ok(key + "\n" + key + " = " + std::string(no)), flag)) << no;
    }
    EXPECT_EQ(value_error(flag.key, "maybe"), "\"maybe\" is not yes, no, true, false, 1 or 0");
  }
}

// ---------------------------------------------------------------------------
// Durations

TEST(Duration, EachUnit) {
  EXPECT_EQ(parse_duration("45"), 45s);
  EXPECT_EQ(parse_duration("45s"), 45s);
  EXPECT_EQ(parse_duration("15m"), 900s);
  EXPECT_EQ(parse_duration("2h"), 7200s);
  EXPECT_EQ(parse_duration("3d"), 3 * 86400s);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_EQ(parse_duration("0m"), 0s);
  EXPECT_EQ(parse_duration("007"), 7s);
  EXPECT_EQ(parse_duration("never"), 0s);
}

TEST(Duration, CompoundLargestUnitFirst) {
  EXPECT_EQ(parse_duration("1h30m"), 5400s);
  EXPECT_EQ(parse_duration("1d2h3m4s"), 86400s + 7200s + 180s + 4s);
  EXPECT_EQ(parse_duration("1d30s"), 86430s);
  EXPECT_EQ(parse_duration("90m"), 5400s);
}

TEST(Duration, RejectsMalformedText) {
  for (std::string_view bad : {"", "-5", "+5", "5x", "m", "1.5h", " 5", "5 m", "1h 30m", "1h30",
                               "30m1h", "1h1h", "1H", "never5", "Never", "5mm", "0x10"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(Duration, UpToOneHundredYears) {
  EXPECT_EQ(parse_duration("36500d"), 36500 * 86400s);
  EXPECT_EQ(parse_duration("3153600000"), 3153600000s);
  EXPECT_EQ(parse_duration("36500d1s"), std::nullopt);
  EXPECT_EQ(parse_duration("3153600001"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999999999d"), std::nullopt);
  EXPECT_EQ(parse_duration("876001h"), std::nullopt);
}

TEST(Duration, TooLongIsReportedAsSuch) {
  EXPECT_EQ(value_error("unlock_time", "36501d"), "\"36501d\" is longer than 100 years");
}

TEST(Duration, FormatIsExactLargestUnitFirst) {
  EXPECT_EQ(format_duration(0s), "0");
  EXPECT_EQ(format_duration(1s), "1s");
  EXPECT_EQ(format_duration(59s), "59s");
  EXPECT_EQ(format_duration(60s), "1m");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(900s), "15m");
  EXPECT_EQ(format_duration(3600s), "1h");
  EXPECT_EQ(format_duration(5400s), "1h30m");
  EXPECT_EQ(format_duration(86400s), "1d");
  EXPECT_EQ(format_duration(90061s), "1d1h1m1s");
  EXPECT_EQ(format_duration(30 * 86400s), "30d");
  EXPECT_EQ(format_duration(-90s), "-1m30s");
}

TEST(Duration, FormatReadsBack) {
  for (std::int64_t s = 0; s < 200000; s += 37) {
    EXPECT_EQ(parse_duration(format_duration(Seconds{s})), Seconds{s}) << s;
  }
  const Seconds longest{100LL * 365 * 86400};
  EXPECT_EQ(parse_duration(format_duration(longest)), longest);
}

// ---------------------------------------------------------------------------
// Lines

TEST(ConfigLines, CommentsBlankLinesAndWhitespace) {
  const Options options = parse_ok(
      "# a comment\n"
      "\n"
      "   \t\n"
      "   # an indented comment\n"
      "deny=4\n"
      "\tfail_interval\t=\t20m\t\n"
      "  unlock_time =   5m   # trailing comment\n"
      "debug # a flag with a comment\n"
      "admin_group = wheel#staff\n");
  EXPECT_EQ(options.rules.deny, 4u);
  EXPECT_EQ(options.rules.fail_interval, 1200s);
  EXPECT_EQ(options.rules.unlock_time, 300s);
  EXPECT_TRUE(options.debug);
  EXPECT_EQ(options.admin_group, "wheel#staff");
}

TEST(ConfigLines, WindowsLineEndingsAndNoFinalNewline) {
  const Options options = parse_ok("deny = 7\r\nsilent\r\ntimeout_ms = 500");
  EXPECT_EQ(options.rules.deny, 7u);
  EXPECT_TRUE(options.silent);
  EXPECT_EQ(options.timeout, 500ms);
}

TEST(ConfigLines, EmptyTextGivesTheBase) {
  Options base;
  base.rules.deny = 9;
  base.database = "/elsewhere.db";
  const ParsedConfig parsed = parse_config("", kFile, base);
  EXPECT_THAT(parsed.diagnostics, IsEmpty());
  expect_same_options(parsed.options, base);
}

TEST(ConfigLines, LaterDuplicateWins) {
  EXPECT_EQ(parse_ok("deny = 4\ndeny = 6\n").rules.deny, 6u);
}

TEST(HistoryCaps, DefaultsBoundsAndRootsReserveBelowTheTotal) {
  const Options defaults = parse_ok("");
  EXPECT_EQ(defaults.history_max_rows, 1'000'000u);
  EXPECT_EQ(defaults.history_root_reserved_rows, 500'000u);
  EXPECT_EQ(defaults.history_max_rows_per_uid, 1'000u);
  const Options set = parse_ok(
      "history_max_rows = 5000\nhistory_root_reserved_rows = 0\nhistory_max_rows_per_uid = 10\n");
  EXPECT_EQ(set.history_max_rows, 5000u);
  EXPECT_EQ(set.history_root_reserved_rows, 0u);
  EXPECT_EQ(set.history_max_rows_per_uid, 10u);
  EXPECT_EQ(parse_one_diagnostic("history_max_rows_per_uid = 9").to_string(),
            "acctlock.conf:1: history_max_rows_per_uid: \"9\" is not a whole number from 10 to "
            "1000000000");
  EXPECT_EQ(parse_one_diagnostic("history_max_rows = 99").to_string(),
            "acctlock.conf:1: history_max_rows: \"99\" is not a whole number from 100 to "
            "1000000000");
  // No room left for non-root peers is an error naming the reserve's line.
  const ParsedConfig parsed =
      parse_config("history_max_rows = 1000\nhistory_root_reserved_rows = 1000\n", kFile);
  ASSERT_TRUE(parsed.has_errors());
  EXPECT_EQ(diagnostic_texts(parsed),
            std::vector<std::string>{"acctlock.conf:2: history_root_reserved_rows: "
                                     "history_root_reserved_rows (1000) must be below "
                                     "history_max_rows (1000)"});
  EXPECT_EQ(parsed.options.history_max_rows, 1'000'000u);
  EXPECT_EQ(parsed.options.history_root_reserved_rows, 500'000u);
}

TEST(ConfigLines, LineNumbersCountEveryLine) {
  const Diagnostic d = parse_one_diagnostic("# one\n\ndeny = 3\n\n\n\ndeny = abc\n");
  EXPECT_EQ(d.to_string(), "acctlock.conf:7: deny: \"abc\" is not a whole number from 1 to 1000");
}

TEST(ConfigLines, BadValueKeepsThePreviousValue) {
  const ParsedConfig parsed = parse_config("deny = 5\ndeny = five\n", kFile);
  EXPECT_TRUE(parsed.has_errors());
  EXPECT_EQ(parsed.options.rules.deny, 5u);

  Options base;
  base.event_socket = "/run/other.sock";
  EXPECT_EQ(parse_config("event_socket = relative", kFile, base).options.event_socket,
            "/run/other.sock");
}

TEST(ConfigLines, ErrorsDoNotStopTheRestOfTheFile) {
  const ParsedConfig parsed =
      parse_config("deny = x\ndebug\nfrobnicate\nunlock_time = 1m\n", kFile);
  EXPECT_THAT(parsed.diagnostics, SizeIs(2));
  EXPECT_TRUE(parsed.options.debug);
  EXPECT_EQ(parsed.options.rules.unlock_time, 60s);
}

TEST(ConfigLines, MissingKeyIsAnError) {
  const Diagnostic d = parse_one_diagnostic("deny = 3\n= 5\n");
  EXPECT_EQ(d.severity, Diagnostic::Severity::error);
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.key, "");
  EXPECT_EQ(d.to_string(), "acctlock.conf:2: \"= 5\" has no key before \"=\"");
}

TEST(ConfigLines, MissingValueIsAnError) {
  const Diagnostic d = parse_one_diagnostic("\ndeny = # nothing\n");
  EXPECT_EQ(d.severity, Diagnostic::Severity::error);
  EXPECT_EQ(d.to_string(), "acctlock.conf:2: deny: no value after \"=\"; expected N");

  EXPECT_EQ(parse_one_diagnostic("debug =").to_string(),
            "acctlock.conf:1: debug: no value after \"=\"; expected yes or no");
}

TEST(ConfigLines, NonFlagWithoutValueNeedsAValue) {
  const Diagnostic d = parse_one_diagnostic("unlock_time\n");
  EXPECT_EQ(d.severity, Diagnostic::Severity::error);
  EXPECT_EQ(d.to_string(),
            "acctlock.conf:1: unlock_time: needs a value (unlock_time = DURATION|never)");
}

TEST(ConfigLines, MissingEqualsSignIsAnError) {
  const Diagnostic known = parse_one_diagnostic("deny 5\n");
  EXPECT_EQ(known.severity, Diagnostic::Severity::error);
  EXPECT_EQ(known.to_string(),
            "acctlock.conf:1: deny: expected \"=\" between the key and its value");

  const Diagnostic unknown = parse_one_diagnostic("what is this\n");
  EXPECT_EQ(unknown.severity, Diagnostic::Severity::error);
  EXPECT_EQ(unknown.key, "");
  EXPECT_EQ(
      unknown.to_string(),
      "acctlock.conf:1: cannot read \"what is this\": expected \"key = value\" or a single key");
}

TEST(ConfigLines, UnknownKeyIsAWarning) {
  const ParsedConfig parsed = parse_config("deny = 4\nunlock_tme = 5m\nnodelayy\n", kFile);
  ASSERT_THAT(parsed.diagnostics, SizeIs(2));
  EXPECT_TRUE(parsed.has_warnings());
  EXPECT_FALSE(parsed.has_errors());
  EXPECT_EQ(parsed.diagnostics[0].severity, Diagnostic::Severity::warning);
  EXPECT_EQ(parsed.diagnostics[0].to_string(), "acctlock.conf:2: unlock_tme: unknown key, ignored");
  EXPECT_EQ(parsed.diagnostics[1].to_string(), "acctlock.conf:3: nodelayy: unknown key, ignored");
  EXPECT_EQ(parsed.options.rules.deny, 4u);
  EXPECT_EQ(parsed.options.rules.unlock_time, Options{}.rules.unlock_time);
}

TEST(ConfigLines, KeysAreCaseSensitive) {
  const Diagnostic d = parse_one_diagnostic("Deny = 4");
  EXPECT_EQ(d.severity, Diagnostic::Severity::warning);
  EXPECT_EQ(d.key, "Deny");
}

// ---------------------------------------------------------------------------
// Cross-checks

TEST(CrossChecks, CapShorterThanUnlockTimeWarnsOnTheLaterKey) {
  const ParsedConfig cap_later = parse_config("unlock_time = 2h\nmax_unlock_time = 1h\n", kFile);
  ASSERT_THAT(cap_later.diagnostics, SizeIs(1));
  EXPECT_EQ(cap_later.diagnostics[0].severity, Diagnostic::Severity::warning);
  EXPECT_FALSE(cap_later.has_errors());
  EXPECT_EQ(cap_later.diagnostics[0].to_string(),
            "acctlock.conf:2: max_unlock_time: max_unlock_time (1h) is shorter than unlock_time "
            "(2h); those lockouts last 1h");
  // The values stand as written: the policy applies the cap.
  EXPECT_EQ(cap_later.options.rules.unlock_time, 2h);
  EXPECT_EQ(cap_later.options.rules.max_unlock_time, 1h);

  const ParsedConfig start_later =
      parse_config("max_unlock_time = 1h\n\nunlock_time = 2h\n", kFile);
  ASSERT_THAT(start_later.diagnostics, SizeIs(1));
  EXPECT_EQ(start_later.diagnostics[0].line, 3u);
  EXPECT_EQ(start_later.diagnostics[0].key, "unlock_time");
}

TEST(CrossChecks, RootUnlockTimeIsCheckedToo) {
  const Diagnostic d = parse_one_diagnostic("max_unlock_time = 1h\nroot_unlock_time = 90m\n");
  EXPECT_EQ(d.severity, Diagnostic::Severity::warning);
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.key, "root_unlock_time");
  EXPECT_THAT(d.message, HasSubstr("shorter than root_unlock_time (1h30m)"));
}

TEST(CrossChecks, NoWarningWhenTheCapIsNotExceeded) {
  parse_ok("unlock_time = 1h\nmax_unlock_time = 1h\n");
  parse_ok("unlock_time = never\nmax_unlock_time = 1h\nroot_unlock_time = 0\n");
}

TEST(CrossChecks, ConflictFromTheBaseIsReportedWithoutALine) {
  Options base;
  base.rules.unlock_time = 2h;
  const Diagnostic d = parse_one_diagnostic("max_unlock_time = 3h\nmax_unlock_time = 1h\n", base);
  EXPECT_EQ(d.line, 2u);
  EXPECT_EQ(d.key, "max_unlock_time");

  base.rules.max_unlock_time = 1h;
  const Diagnostic from_base = parse_one_diagnostic("", base);
  EXPECT_EQ(from_base.line, 0u);
  EXPECT_THAT(from_base.to_string(), HasSubstr("acctlock.conf: max_unlock_time: "));
}

// ---------------------------------------------------------------------------
// Diagnostics and the module-argument setter

TEST(DiagnosticText, LeavesOutEmptyParts) {
  using Severity = Diagnostic::Severity;
  EXPECT_EQ((Diagnostic{Severity::error, "f.conf", 3, "deny", "bad"}).to_string(),
            "f.conf:3: deny: bad");
  EXPECT_EQ((Diagnostic{Severity::error, "f.conf", 3, "", "bad"}).to_string(), "f.conf:3: bad");
  EXPECT_EQ((Diagnostic{Severity::error, "f.conf", 0, "", "bad"}).to_string(), "f.conf: bad");
  EXPECT_EQ((Diagnostic{Severity::warning, "", 0, "debug", "bad"}).to_string(), "debug: bad");
}

TEST(OptionKeys, SourceDenyAcceptsZeroAsOff) {
  EXPECT_EQ(parse_ok("source_deny = 20").source_rules.deny, 20u);
  EXPECT_EQ(parse_ok("source_deny = 0").source_rules.deny, 0u);
  EXPECT_EQ(value_error("source_deny", "-1"),
            "\"-1\" is not a whole number from 0 to 1000 (0 turns this off)");
  // As deny: a sliding window keeps up to source_deny times per source.
  EXPECT_EQ(parse_ok("source_deny = 1000").source_rules.deny, 1000u);
  EXPECT_THAT(value_error("source_deny", "1001"), HasSubstr("is too large"));
}

TEST(OptionKeys, SourcesCountFailuresAsFailWindowSays) {
  EXPECT_EQ(Options{}.source_rules.fail_window, FailWindow::sliding);
  EXPECT_EQ(parse_ok("fail_window = chained").source_rules.fail_window, FailWindow::chained);
  EXPECT_EQ(parse_ok("fail_window = chained\nfail_window = sliding").source_rules.fail_window,
            FailWindow::sliding);
}

TEST(OptionKeys, SourceDurations) {
  EXPECT_EQ(parse_ok("source_fail_interval = 1h").source_rules.fail_interval, 3600s);
  EXPECT_THAT(value_error("source_fail_interval", "0"),
              HasSubstr("is not a duration greater than 0"));
  EXPECT_EQ(parse_ok("source_unlock_time = never").source_rules.unlock_time, 0s);
  EXPECT_EQ(parse_ok("source_unlock_time = 2h").source_rules.unlock_time, 7200s);
  EXPECT_EQ(parse_ok("source_max_unlock_time = 7d").source_rules.max_unlock_time, 7 * 24h);
  EXPECT_THAT(value_error("source_max_unlock_time", "0"),
              HasSubstr("is not a duration greater than 0"));
  EXPECT_EQ(parse_ok("source_lockout_memory = 0").source_rules.lockout_memory, 0s);
  EXPECT_THAT(value_error("source_lockout_memory", "never"), HasSubstr("is not a duration"));
  EXPECT_EQ(parse_ok("source_lockout_multiplier = 1.5").source_rules.lockout_multiplier, 1.5);
  EXPECT_THAT(value_error("source_lockout_multiplier", "0.5"), HasSubstr("from 1 to 100"));
}

TEST(OptionKeys, SourcePrefixV6From1To128) {
  EXPECT_EQ(parse_ok("source_prefix_v6 = 1").source_rules.prefix_v6, 1u);
  EXPECT_EQ(parse_ok("source_prefix_v6 = 128").source_rules.prefix_v6, 128u);
  EXPECT_EQ(value_error("source_prefix_v6", "0"), "\"0\" is not a prefix length from 1 to 128");
  EXPECT_EQ(value_error("source_prefix_v6", "129"),
            "\"129\" is too large: expected a prefix length from 1 to 128");
}

TEST(OptionKeys, TrustedSourcesIsAListOfPrefixes) {
  const Options o = parse_ok("trusted_sources = 192.0.2.0/24, 2001:db8::/32 198.51.100.7");
  ASSERT_EQ(o.source_rules.trusted.size(), 3u);
  EXPECT_EQ(o.source_rules.trusted[0].to_string(), "192.0.2.0/24");
  EXPECT_EQ(o.source_rules.trusted[1].to_string(), "2001:db8::/32");
  EXPECT_EQ(o.source_rules.trusted[2].to_string(), "198.51.100.7");
  // A later line replaces the list, as a later line does for every key.
  EXPECT_EQ(parse_ok("trusted_sources = 10.0.0.0/8\ntrusted_sources = 192.0.2.1\n")
                .source_rules.trusted.size(),
            1u);
  EXPECT_EQ(value_error("trusted_sources", "10.1.2.3/8"),
            "\"10.1.2.3/8\" has host bits set after /8; write the network address, 10.0.0.0/8");
  EXPECT_EQ(value_error("trusted_sources", "192.0.2.0/24 gw.example.org"),
            "\"gw.example.org\" is not an address or CIDR prefix, such as 192.0.2.0/24");
  EXPECT_EQ(value_error("trusted_sources", ","),
            "\",\" is not a list of addresses and CIDR prefixes");
}

TEST(OptionKeys, LockoutScope) {
  EXPECT_EQ(parse_ok("lockout_scope = unfamiliar").familiar_sources.scope,
            LockoutScope::unfamiliar);
  EXPECT_EQ(parse_ok("lockout_scope = account").familiar_sources.scope, LockoutScope::account);
  EXPECT_EQ(value_error("lockout_scope", "Account"), "\"Account\" is not account or unfamiliar");
}

TEST(OptionKeys, FamiliarSources) {
  EXPECT_EQ(parse_ok("familiar_sources_max = 1").familiar_sources.max_per_user, 1u);
  EXPECT_EQ(value_error("familiar_sources_max", "0"), "\"0\" is not a whole number >= 1");
  EXPECT_EQ(parse_ok("familiar_source_memory = 90d").familiar_sources.memory, 90 * 24h);
  EXPECT_THAT(value_error("familiar_source_memory", "0"),
              HasSubstr("is not a duration greater than 0"));
}

TEST(OptionKeys, MaxTrackedSources) {
  EXPECT_EQ(Options{}.max_tracked_sources, 65536u);
  EXPECT_EQ(parse_ok("max_tracked_sources = 16").max_tracked_sources, 16u);
  EXPECT_EQ(parse_ok("max_tracked_sources = 100000000").max_tracked_sources, 100'000'000u);
  EXPECT_THAT(value_error("max_tracked_sources", "15"),
              HasSubstr("is not a whole number from 16 to 100000000"));
  EXPECT_THAT(value_error("max_tracked_sources", "100000001"),
              HasSubstr("is too large: expected a whole number from 16 to 100000000"));
}

TEST(OptionKeys, SprayDetection) {
  EXPECT_EQ(Options{}.spray.users, 30u);
  EXPECT_EQ(Options{}.spray.sources, 10u);
  EXPECT_EQ(Options{}.spray.window, 10min);
  EXPECT_EQ(parse_ok("spray_users = 0").spray.users, 0u);
  EXPECT_EQ(parse_ok("spray_users = 100000").spray.users, 100'000u);
  EXPECT_THAT(value_error("spray_users", "100001"), HasSubstr("from 0 to 100000"));
  EXPECT_EQ(parse_ok("spray_sources = 1").spray.sources, 1u);
  EXPECT_THAT(value_error("spray_sources", "0"), HasSubstr("from 1 to 100000"));
  EXPECT_EQ(parse_ok("spray_window = 1h").spray.window, 1h);
  EXPECT_THAT(value_error("spray_window", "0"), HasSubstr("is not a duration greater than 0"));
}

TEST(CrossChecks, SourceCapShorterThanSourceUnlockTimeWarns) {
  const Diagnostic d =
      parse_one_diagnostic("source_unlock_time = 2d\nsource_max_unlock_time = 1d\n");
  EXPECT_EQ(d.severity, Diagnostic::Severity::warning);
  EXPECT_EQ(d.to_string(),
            "acctlock.conf:2: source_max_unlock_time: source_max_unlock_time (1d) is shorter "
            "than source_unlock_time (2d); those blocks last 1d");
  EXPECT_THAT(
      parse_config("source_unlock_time = never\nsource_max_unlock_time = 1h\n", kFile).diagnostics,
      IsEmpty());
}

TEST(SetOption, ModuleArgumentStyle) {
  Options options;
  std::string error;
  EXPECT_EQ(set_option(options, "deny", "5", &error), SetResult::ok);
  EXPECT_EQ(set_option(options, "debug", std::nullopt, &error), SetResult::ok);
  EXPECT_EQ(set_option(options, "timeout_ms", "250", &error), SetResult::ok);
  EXPECT_EQ(options.rules.deny, 5u);
  EXPECT_TRUE(options.debug);
  EXPECT_EQ(options.timeout, 250ms);
  EXPECT_TRUE(error.empty());
}

TEST(SetOption, ReportsUnknownKeysAndBadValuesWithoutChangingOptions) {
  Options options;
  std::string error;
  EXPECT_EQ(set_option(options, "use_first_pass", std::nullopt, &error), SetResult::unknown_key);
  EXPECT_EQ(set_option(options, "deny", "", &error), SetResult::bad_value);
  EXPECT_EQ(error, "\"\" is not a whole number from 1 to 1000");
  EXPECT_EQ(set_option(options, "deny", std::nullopt, &error), SetResult::bad_value);
  EXPECT_EQ(error, "needs a value (deny = N)");
  EXPECT_EQ(set_option(options, "silent", "loud", nullptr), SetResult::bad_value);
  expect_same_options(options, Options{});
}

// ---------------------------------------------------------------------------
// Files

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "acctlock-options-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(LoadConfig, ReadsAFileAndNamesItInDiagnostics) {
  TempDir dir;
  const std::string path = dir.file("acctlock.conf");
  write_file(path, "deny = 6\nsilent\ndebug = sometimes\n");
  const ParsedConfig parsed = load_config(path);
  EXPECT_EQ(parsed.options.rules.deny, 6u);
  EXPECT_TRUE(parsed.options.silent);
  ASSERT_THAT(parsed.diagnostics, SizeIs(1));
  EXPECT_EQ(parsed.diagnostics[0].to_string(),
            path + ":3: debug: \"sometimes\" is not yes, no, true, false, 1 or 0");
}

TEST(LoadConfig, MissingFileWithMissingOkGivesDefaults) {
  TempDir dir;
  const ParsedConfig parsed = load_config(dir.file("absent.conf"), /*missing_ok=*/true);
  EXPECT_THAT(parsed.diagnostics, IsEmpty());
  expect_same_options(parsed.options, Options{});
}

TEST(LoadConfig, MissingFileIsAnErrorByDefault) {
  TempDir dir;
  const std::string path = dir.file("absent.conf");
  const ParsedConfig parsed = load_config(path);
  ASSERT_THAT(parsed.diagnostics, SizeIs(1));
  EXPECT_TRUE(parsed.has_errors());
  EXPECT_EQ(parsed.diagnostics[0].line, 0u);
  EXPECT_EQ(parsed.diagnostics[0].to_string(), path + ": cannot read: No such file or directory");
  expect_same_options(parsed.options, Options{});
}

TEST(LoadConfig, UnreadablePathsAreErrorsEvenWithMissingOk) {
  // The tests run as root, so permissions cannot make a file unreadable; a
  // directory, a path through a regular file and a FIFO fail for root too.
  TempDir dir;
  const std::string regular = dir.file("regular");
  write_file(regular, "deny = 4\n");
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);

  const std::pair<std::string, std::string> cases[] = {
      {dir.file(""), "cannot read: Is a directory"},
      {regular + "/acctlock.conf", "cannot read: Not a directory"},
      {fifo, "cannot read: not a regular file"},
  };
  for (const auto& [path, message] : cases) {
    const ParsedConfig parsed = load_config(path, /*missing_ok=*/true);
    ASSERT_THAT(parsed.diagnostics, SizeIs(1)) << path;
    EXPECT_EQ(parsed.diagnostics[0].severity, Diagnostic::Severity::error);
    EXPECT_EQ(parsed.diagnostics[0].line, 0u);
    EXPECT_EQ(parsed.diagnostics[0].file, path);
    EXPECT_EQ(parsed.diagnostics[0].message, message);
    expect_same_options(parsed.options, Options{});
  }
}

TEST(LoadConfig, RefusesAnOversizedFile) {
  TempDir dir;
  const std::string path = dir.file("huge.conf");
  write_file(path, std::string(2 * 1024 * 1024, '#'));
  const ParsedConfig parsed = load_config(path);
  ASSERT_THAT(parsed.diagnostics, SizeIs(1));
  EXPECT_THAT(parsed.diagnostics[0].message, HasSubstr("larger than"));
}

// ---------------------------------------------------------------------------
// The shipped etc/acctlock.conf

struct ShippedSetting {
  std::string key;
  std::optional<std::string> value;
  unsigned line;
};

std::string read_shipped_file() {
  std::ifstream in(std::string(ACCTLOCK_SOURCE_DIR) + "/etc/acctlock.conf");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_table_key(std::string_view name) {
  for (const OptionInfo& info : option_table()) {
    if (info.name == name) return true;
  }
  return false;
}

// The commented-out settings: "# key = value" or "# key" naming a table key.
std::vector<ShippedSetting> shipped_settings(const std::string& text) {
  static const std::regex setting(R"(^# ([a-z_0-9]+)(?: = (.*))?$)");
  std::vector<ShippedSetting> settings;
  std::istringstream lines(text);
  std::string line;
  unsigned number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::smatch match;
    if (!std::regex_match(line, match, setting) || !is_table_key(match[1].str())) continue;
    settings.push_back(
        {match[1].str(), match[2].matched ? std::optional(match[2].str()) : std::nullopt, number});
  }
  return settings;
}

TEST(ShippedConfig, ListsEveryKeyOnceInTableOrderWithTheTableDefault) {
  const std::string text = read_shipped_file();
  ASSERT_FALSE(text.empty());
  const std::vector<ShippedSetting> settings = shipped_settings(text);

  const auto table = option_table();
  ASSERT_EQ(settings.size(), table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(settings[i].key, table[i].name) << "line " << settings[i].line;
    ASSERT_TRUE(settings[i].value.has_value()) << settings[i].key << ": shown without a value";
    EXPECT_EQ(*settings[i].value, table[i].default_text) << settings[i].key;
  }
}

TEST(ShippedConfig, IsCleanAsShipped) {
  const ParsedConfig parsed = parse_config(read_shipped_file(), "etc/acctlock.conf");
  EXPECT_THAT(diagnostic_texts(parsed), IsEmpty());
  expect_same_options(parsed.options, Options{});
}

TEST(ShippedConfig, UncommentedDefaultsParseToTheDefaults) {
  const std::string text = read_shipped_file();
  std::set<unsigned> setting_lines;
  std::set<std::string> placeholders;
  for (const ShippedSetting& s : shipped_settings(text)) {
    // "<...>" describes a default that has no value to write.
    if (s.value && s.value->starts_with('<')) {
      placeholders.insert(s.key);
    } else {
      setting_lines.insert(s.line);
    }
  }
  EXPECT_EQ(placeholders,
            (std::set<std::string>{"admin_group", "root_unlock_time", "admin_socket_group",
                                   "exempt_group", "postgresql", "host_name", "trusted_sources"}));

  std::istringstream lines(text);
  std::string uncommented;
  std::string line;
  unsigned number = 0;
  while (std::getline(lines, line)) {
    ++number;
    uncommented += setting_lines.count(number) != 0 ? line.substr(2) : line;
    uncommented += '\n';
  }
  ASSERT_NE(uncommented, text);

  // Start from values unlike every default, so a setting line that fails to
  // take effect shows up as a difference.
  Options base;
  base.rules.deny = 9;
  base.rules.fail_interval = 1h;
  base.rules.unlock_time = 2h;
  base.rules.lockout_multiplier = 3.5;
  base.rules.max_unlock_time = 7 * 24h;
  base.rules.lockout_memory = 3 * 24h;
  base.rules.permanent_after = 4;
  base.rules.even_deny_root = true;
  base.rules.root_unlock_time = 1h;
  base.admin_group = "wheel";
  base.history_retention = 24h;
  base.event_socket = "/tmp/e.sock";
  base.admin_socket = "/tmp/a.sock";
  base.database = "/tmp/db";
  base.silent = true;
  base.debug = true;
  base.timeout = 1ms;
  base.on_unavailable = UnavailableAction::deny;
  base.account_deny_locked = true;
  base.keep_lock_on_password_change = true;
  base.admin_socket_group = "adm";
  base.exempt_group = "breakglass";
  base.faillock_dir = "/tmp/tallies";
  base.local_users_only = true;
  base.nodelay = true;
  base.audit = true;
  base.no_log_info = true;
  base.source_rules.deny = 3;
  base.source_rules.fail_interval = 1h;
  base.source_rules.unlock_time = 0s;
  base.source_rules.lockout_multiplier = 4;
  base.source_rules.max_unlock_time = 7 * 24h;
  base.source_rules.lockout_memory = 0s;
  base.source_rules.prefix_v6 = 48;
  base.source_rules.trusted = {*parse_address_prefix("192.0.2.0/24", nullptr)};
  base.familiar_sources.scope = LockoutScope::unfamiliar;
  base.familiar_sources.max_per_user = 2;
  base.familiar_sources.memory = 24h;

  Options expected;
  expected.source_rules.trusted = base.source_rules.trusted;
  expected.admin_group = base.admin_group;
  expected.admin_socket_group = base.admin_socket_group;
  expected.exempt_group = base.exempt_group;
  expected.rules.root_unlock_time = base.rules.root_unlock_time;

  const ParsedConfig parsed = parse_config(uncommented, "etc/acctlock.conf", base);
  EXPECT_THAT(diagnostic_texts(parsed), IsEmpty());
  expect_same_options(parsed.options, expected);
}

// Every key of Debian 12's /etc/security/faillock.conf, uncommented with
// faillock's own spelling (bare flags, plain seconds), must be read with
// faillock's meaning: `cp faillock.conf acctlock.conf` is a safe migration.
TEST(FaillockCompatibility, EveryFaillockConfKeyIsReadWithFaillocksMeaning) {
  const ParsedConfig parsed = parse_config(
      "dir = /var/run/faillock\n"
      "audit\n"
      "silent\n"
      "no_log_info\n"
      "local_users_only\n"
      "nodelay\n"
      "deny = 3\n"
      "fail_interval = 900\n"
      "unlock_time = 600\n"
      "even_deny_root\n"
      "root_unlock_time = 900\n"
      "admin_group = wheel\n",
      "faillock.conf");
  EXPECT_THAT(diagnostic_texts(parsed), IsEmpty());
  const Options& o = parsed.options;
  EXPECT_EQ(o.faillock_dir, "/var/run/faillock");
  EXPECT_TRUE(o.audit);
  EXPECT_TRUE(o.silent);
  EXPECT_TRUE(o.no_log_info);
  EXPECT_TRUE(o.local_users_only);
  EXPECT_TRUE(o.nodelay);
  EXPECT_EQ(o.rules.deny, 3u);
  EXPECT_EQ(o.rules.fail_interval, 900s);
  EXPECT_EQ(o.rules.unlock_time, 600s);
  EXPECT_TRUE(o.rules.even_deny_root);
  EXPECT_EQ(o.rules.root_unlock_time, 900s);
  // faillock's admin_group: treated like root. It must not open the admin
  // socket to the group, as it did in acctlock 0.1.
  EXPECT_EQ(o.admin_group, "wheel");
  EXPECT_EQ(o.admin_socket_group, "");
}

TEST(FaillockCompatibility, AdminGroupAloneGetsAMigrationNoteNamingTheNewKey) {
  Options options;
  EXPECT_THAT(migration_notes(options), IsEmpty());
  options.admin_group = "wheel";
  const auto notes = migration_notes(options);
  ASSERT_THAT(notes, SizeIs(1));
  EXPECT_THAT(notes[0], HasSubstr("treated like root"));
  EXPECT_THAT(notes[0], HasSubstr("admin_socket_group = wheel"));
  options.admin_socket_group = "wheel";
  EXPECT_THAT(migration_notes(options), IsEmpty());
}

TEST(FaillockCompatibility, GroupKeysRejectWhatCannotBeAGroup) {
  EXPECT_EQ(parse_ok("admin_socket_group = adm").admin_socket_group, "adm");
  EXPECT_EQ(parse_ok("exempt_group = break glass").exempt_group, "break glass");
  EXPECT_EQ(value_error("exempt_group", "a:b"), "\"a:b\" is not a group name");
  EXPECT_EQ(value_error("dir", "tallies"), "\"tallies\" is not an absolute path");
}

TEST(OptionKeys, StorePostgresqlAndHostName) {
  EXPECT_EQ(Options{}.store, StoreKind::sqlite);
  const Options fleet = parse_ok(
      "store = postgresql\npostgresql = /etc/security/acctlock-postgresql.conf\n"
      "host_name = web-01.example_org\n");
  EXPECT_EQ(fleet.store, StoreKind::postgresql);
  EXPECT_EQ(fleet.postgresql, "/etc/security/acctlock-postgresql.conf");
  EXPECT_EQ(fleet.host_name, "web-01.example_org");
  EXPECT_EQ(parse_ok("postgresql = host=db dbname=acctlock sslmode=verify-full").postgresql,
            "host=db dbname=acctlock sslmode=verify-full");
  EXPECT_EQ(value_error("store", "mysql"), "\"mysql\" is not sqlite or postgresql");
  EXPECT_THAT(value_error("host_name", "a b"), HasSubstr("is not 1 to 253 letters"));
  EXPECT_THAT(value_error("host_name", std::string(254, 'a')), HasSubstr("is not 1 to 253"));
}

TEST(OptionKeys, StorePostgresqlWithoutAServerIsAnErrorNamingTheLine) {
  const ParsedConfig parsed = parse_config("deny = 4\nstore = postgresql\n", kFile);
  ASSERT_THAT(parsed.diagnostics, SizeIs(1));
  EXPECT_EQ(parsed.diagnostics[0].line, 2u);
  EXPECT_EQ(parsed.diagnostics[0].key, "store");
  EXPECT_THAT(parsed.diagnostics[0].message, HasSubstr("needs postgresql ="));
  EXPECT_EQ(parsed.options.store, StoreKind::sqlite);
}

}  // namespace
}  // namespace acctlock

// ---------------------------------------------------------------------------
// [service NAME] sections (docs/policy.md, "Per-service rules")

namespace acctlock {
namespace {

TEST(ServiceSections, OverrideTheRuleKeysOfTheGlobalRulesAboveThem) {
  const Options o = parse_ok(
      "deny = 5\nunlock_time = 10m\n"
      "[service sshd]\ndeny = 2\nunlock_time = 1h\neven_deny_root\n"
      "[ service su ]  # spaces inside the brackets are fine\nfail_interval = 1h\n");
  EXPECT_EQ(o.rules.deny, 5u) << "a section's keys do not touch the global rules";
  EXPECT_EQ(o.rules.unlock_time, 10min);
  ASSERT_EQ(o.service_rules.size(), 2u);
  const LockoutRules& sshd = o.service_rules.at("sshd");
  EXPECT_EQ(sshd.deny, 2u);
  EXPECT_EQ(sshd.unlock_time, 1h);
  EXPECT_TRUE(sshd.even_deny_root);
  EXPECT_EQ(sshd.fail_interval, 15min) << "unset keys come from the global rules";
  const LockoutRules& su = o.service_rules.at("su");
  EXPECT_EQ(su.deny, 5u);
  EXPECT_EQ(su.fail_interval, 1h);
  EXPECT_TRUE(parse_ok("deny = 4\n").service_rules.empty());
}

TEST(ServiceSections, MistakesNameFileLineAndKey) {
  const auto one = [](std::string_view text) { return parse_one_diagnostic(text).to_string(); };
  EXPECT_EQ(one("[jail sshd]\ndeny = 2\n"),
            "acctlock.conf:1: unknown section \"[jail sshd]\"; the only section is [service NAME]");
  EXPECT_EQ(one("[service sshd\n"),
            "acctlock.conf:1: unknown section \"[service sshd\"; the only section is "
            "[service NAME]");
  EXPECT_EQ(one("[service]\n"), "acctlock.conf:1: \"[service]\": \"\" is not a PAM service name");
  EXPECT_EQ(one("[service a/b]\n"),
            "acctlock.conf:1: \"[service a/b]\": \"a/b\" is not a PAM service name");
  EXPECT_EQ(one("[service sshd]\ndenny = 2\n"),
            "acctlock.conf:2: denny: unknown key in [service sshd]; a section sets deny, "
            "fail_interval, unlock_time, lockout_multiplier, max_unlock_time, lockout_memory, "
            "permanent_after, even_deny_root and root_unlock_time");
  EXPECT_EQ(one("[service sshd]\nadmin_socket = /run/x.sock\n").substr(0, 69),
            "acctlock.conf:2: admin_socket: not a rule key: it cannot be set in [s");
  EXPECT_EQ(one("[service sshd]\nfail_window = chained\n").substr(0, 50),
            "acctlock.conf:2: fail_window: not a rule key: it c");
  EXPECT_EQ(one("[service sshd]\ndeny = 0\n"),
            "acctlock.conf:2: deny: \"0\" is not a whole number from 1 to 1000");
  EXPECT_EQ(one("[service sshd]\ndeny = 2\n[service sshd]\ndeny = 3\n"),
            "acctlock.conf:3: [service sshd] again (first at line 1): write its keys in one "
            "section");
  // Keys under a bad section header are checked, and never become global.
  const ParsedConfig parsed = parse_config("[jail x]\ndeny = 2\nbogus = 1\n", "acctlock.conf");
  ASSERT_EQ(parsed.diagnostics.size(), 2u);
  EXPECT_EQ(parsed.diagnostics[1].line, 3u);
  EXPECT_EQ(parsed.diagnostics[1].key, "bogus");
  EXPECT_EQ(parsed.options.rules.deny, 3u);
  EXPECT_TRUE(parsed.options.service_rules.empty());
}

}  // namespace
}  // namespace acctlock
