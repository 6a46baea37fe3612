// SPDX-License-Identifier: BSD-3-Clause
// Plain log lines from acctlockd to stderr.
//
// Under systemd stderr is a journal stream (JOURNAL_STREAM is set); lines then
// carry the sd-daemon "<N>" priority prefix so journalctl -p works. Structured
// lock events go through daemon/journal/event_log.h instead.
#pragma once

#include <string_view>

namespace acctlock {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void log(LogLevel level, std::string_view message);

// Several lines in one write: append_log_line adds each, prefixed as log()
// prefixes it, and log_text writes them (a commit's events, from the writer
// thread, without a syscall per event).
void append_log_line(std::string& text, LogLevel level, std::string_view message);
void log_text(std::string_view text);

// True when stderr is the journal stream systemd connected (JOURNAL_STREAM
// names its device and inode).
bool stderr_is_journal_stream();

inline void log_error(std::string_view message) {
  log(LogLevel::error, message);
}
inline void log_warning(std::string_view message) {
  log(LogLevel::warning, message);
}
inline void log_notice(std::string_view message) {
  log(LogLevel::notice, message);
}
inline void log_info(std::string_view message) {
  log(LogLevel::info, message);
}

}  // namespace acctlock
