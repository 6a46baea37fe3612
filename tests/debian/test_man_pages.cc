// SPDX-License-Identifier: BSD-3-Clause
// The man pages the packages ship against the code they describe: every key of
// the option table has an entry in acctlock.conf(5) with the same default, and
// the page documents no key the parser does not know.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/options.h"

namespace acctlock {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const std::vector<std::string>& conf_page() {
  static const auto lines = read_lines(ACCTLOCK_SOURCE_DIR "/docs/man/acctlock.conf.5");
  return lines;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// The key a ".TP" tag line names (".BI deny \" = N\"", ".BR silent \" (switch)\""),
// or "" when the line is not such a tag.
std::string tagged_key(const std::vector<std::string>& lines, std::size_t tag_line) {
  if (tag_line == 0 || lines[tag_line - 1] != ".TP") return "";
  const std::string& line = lines[tag_line];
  if (!starts_with(line, ".BI ") && !starts_with(line, ".BR ")) return "";
  std::istringstream words(line.substr(4));
  std::string key;
  words >> key;
  return key;
}

// The lines of the entry of `key`: from its tag to the next .TP or .SH.
std::vector<std::string> entry_of(std::string_view key) {
  const auto& lines = conf_page();
  std::vector<std::string> entry;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (tagged_key(lines, i) != key) continue;
    for (std::size_t j = i; j < lines.size(); ++j) {
      if (j > i && (starts_with(lines[j], ".TP") || starts_with(lines[j], ".SH"))) break;
      entry.push_back(lines[j]);
    }
    break;
  }
  return entry;
}

TEST(AcctlockConfManPage, DocumentsEveryKeyWithItsDefault) {
  for (const OptionInfo& option : option_table()) {
    SCOPED_TRACE(std::string(option.name));
    const auto entry = entry_of(option.name);
    ASSERT_FALSE(entry.empty()) << "acctlock.conf(5) has no entry for this key";
    if (option.is_flag) {
      EXPECT_NE(entry.front().find("(switch)"), std::string::npos);
    }

    // "Default:" then, for a default that has a value, that value on the
    // next line as ".BR 15m ." or ".IR /run/acctlock/event.sock .".
    std::size_t at = 0;
    while (at < entry.size() && !starts_with(entry[at], "Default:")) ++at;
    ASSERT_LT(at, entry.size()) << "the entry does not state the default";
    if (starts_with(option.default_text, "<")) continue;  // described in words
    ASSERT_LT(at + 1, entry.size());
    const std::string& value_line = entry[at + 1];
    const std::string expected_tail = " " + std::string(option.default_text) + " .";
    EXPECT_TRUE(starts_with(value_line, ".BR ") || starts_with(value_line, ".IR ")) << value_line;
    EXPECT_EQ(value_line.substr(3), expected_tail) << "default as the page writes it";
  }
}

TEST(AcctlockConfManPage, DocumentsNoUnknownKey) {
  std::set<std::string> known;
  for (const OptionInfo& option : option_table()) known.emplace(option.name);
  const auto& lines = conf_page();
  // Only the sections that describe keys; EXAMPLES and FILES tag other things.
  bool in_key_section = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (starts_with(lines[i], ".SH ")) {
      in_key_section = lines[i] == ".SH LOCKOUT RULES" || lines[i] == ".SH THE DAEMON" ||
                       lines[i] == ".SH THE PAM MODULE" ||
                       lines[i] == ".SH PAM_FAILLOCK COMPATIBILITY AND EXEMPTIONS" ||
                       lines[i] == ".SH SOURCES AND FAMILIAR SOURCES";
    }
    const std::string key = tagged_key(lines, i);
    if (in_key_section && !key.empty()) {
      EXPECT_TRUE(known.count(key))
          << "acctlock.conf(5) documents \"" << key << "\", which the option table does not have";
    }
  }
}

}  // namespace
}  // namespace acctlock
