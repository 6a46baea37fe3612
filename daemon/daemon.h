// SPDX-License-Identifier: BSD-3-Clause
// acctlockd put together: the store, the lockout state, the sockets, the
// signals and the timers, on one Boost.Asio event loop.
#pragma once

#include <optional>
#include <string>

#include "common/options.h"

namespace acctlock {

// Where lock events go (--log-target).
enum class LogTarget {
  automatic,  // the journal when stderr is systemd's journal stream, else stderr
  journal,    // structured records through sd_journal_send
  stderr,     // readable lines (a test, a container, the demo)
};

struct DaemonConfig {
  Options options;
  std::string config_path;  // re-read on SIGHUP
  bool config_missing_ok = false;
  LogTarget log_target = LogTarget::automatic;
  // --metrics-fd: an inherited listening TCP socket to serve GET /metrics on,
  // for running without systemd's acctlockd-metrics.socket.
  std::optional<int> metrics_fd;
};

// Runs until SIGTERM or SIGINT; returns the process exit code. Start-up
// problems (database, sockets) are logged and give a non-zero code.
int run_daemon(const DaemonConfig& config);

}  // namespace acctlock
