// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace acctlock {
namespace {

const char* level_word(LogLevel level) {
  switch (level) {
    case LogLevel::error:
      return "error";
    case LogLevel::warning:
      return "warning";
    case LogLevel::notice:
      return "notice";
    case LogLevel::info:
      return "info";
    case LogLevel::debug:
      return "debug";
  }
  return "info";
}

}  // namespace

// JOURNAL_STREAM alone is not enough: it is inherited by children whose
// stderr was redirected (a test harness, a shell under a unit), so the
// device and inode it names must be those of our stderr.
bool stderr_is_journal_stream() {
  static const bool journal = [] {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    struct stat info {};
    if (fstat(STDERR_FILENO, &info) != 0) return false;
    return info.st_dev == device && info.st_ino == inode;
  }();
  return journal;
}

void append_log_line(std::string& text, LogLevel level, std::string_view message) {
  if (stderr_is_journal_stream()) {
    text += '<';
    text += std::to_string(static_cast<int>(level));
    text += '>';
  } else {
    text += "acctlockd: ";
    text += level_word(level);
    text += ": ";
  }
  text.append(message);
  text.push_back('\n');
}

void log_text(std::string_view text) {
  // One fwrite per call (stderr is unbuffered, and the stream's lock holds
  // for the call) so that concurrent writers (the batch thread) never
  // interleave inside a line.
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void log(LogLevel level, std::string_view message) {
  std::string line;
  append_log_line(line, level, message);
  log_text(line);
}

}  // namespace acctlock
