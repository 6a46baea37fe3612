#include "daemon/log.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace acctlock {
namespace {

bool stderr_is_journal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

const char* level_word(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warning: return "warning";
    case LogLevel::notice: return "notice";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "info";
}

}  // namespace

void log(LogLevel level, std::string_view message) {
  std::string line;
  if (stderr_is_journal()) {
    line = "<" + std::to_string(static_cast<int>(level)) + ">";
  } else {
    line = "acctlockd: ";
    line += level_word(level);
    line += ": ";
  }
  line.append(message);
  line.push_back('\n');
  // One write per line so concurrent writers (the batch thread) never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace acctlock
