// SPDX-License-Identifier: BSD-3-Clause
#include "cli/faillock_tally.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include "common/user_name.h"

namespace acctlock::cli {
namespace {

constexpr std::size_t kSourceSize = 52;
constexpr std::size_t kRecordSize = 64;
constexpr std::uint16_t kStatusValid = 0x1;
constexpr std::uint16_t kStatusRhost = 0x2;
constexpr std::uint16_t kStatusTty = 0x4;
// A tally holds at most a few dozen records; this keeps a stray huge file
// in the directory from being read into memory.
constexpr std::uintmax_t kMaxTallyBytes = 1024 * kRecordSize;

}  // namespace

TallyDirectory read_tally_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  TallyDirectory result;
  std::error_code error;
  fs::directory_iterator entries(dir, error);
  if (error) throw std::runtime_error(dir + ": " + error.message());

  std::vector<fs::path> paths;
  for (const auto& entry : entries) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const fs::path& path : paths) {
    const std::string user = path.filename().string();
    if (!fs::is_regular_file(path, error)) continue;
    if (!is_valid_user_name(user)) {
      result.problems.push_back(path.string() + ": not a user name, skipped");
      continue;
    }
    const auto size = fs::file_size(path, error);
    if (error || size % kRecordSize != 0 || size > kMaxTallyBytes) {
      result.problems.push_back(path.string() + ": " +
                                (error ? error.message()
                                       : std::to_string(size) +
                                             " bytes is not a pam_faillock tally (64-byte "
                                             "records, at most 1024)") +
                                ", skipped");
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      result.problems.push_back(path.string() + ": cannot read, skipped");
      continue;
    }
    ++result.files;
    for (std::size_t at = 0; at + kRecordSize <= bytes.size(); at += kRecordSize) {
      const char* record = bytes.data() + at;
      TallyRecord out;
      out.user = user;
      out.source.assign(record, strnlen(record, kSourceSize));
      std::uint16_t status = 0;
      std::uint64_t time = 0;
      std::memcpy(&status, record + kSourceSize + 2, sizeof status);
      std::memcpy(&time, record + kSourceSize + 4, sizeof time);
      out.time = static_cast<std::int64_t>(time);
      out.valid = (status & kStatusValid) != 0;
      out.kind = (status & kStatusRhost) ? TallyRecord::SourceKind::rhost
                 : (status & kStatusTty) ? TallyRecord::SourceKind::tty
                                         : TallyRecord::SourceKind::service;
      // An empty slot (never written) has time 0.
      if (out.time > 0) result.records.push_back(std::move(out));
    }
  }
  std::stable_sort(result.records.begin(), result.records.end(),
                   [](const TallyRecord& a, const TallyRecord& b) { return a.time < b.time; });
  return result;
}

}  // namespace acctlock::cli
