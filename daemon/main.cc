// SPDX-License-Identifier: BSD-3-Clause
// acctlockd: the account lockout daemon. See acctlockd(8).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "common/config_groups.h"
#include "common/options.h"
#include "daemon/daemon.h"

namespace {

// Exit codes of --check-config (documented in acctlockd(8)).
constexpr int kConfigOk = 0;
constexpr int kConfigErrors = 1;
constexpr int kConfigWarnings = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"acctlockd: account lockout daemon"};
  std::string config_path = ACCTLOCK_DEFAULT_CONFIG;
  bool check_config = false;
  acctlock::LogTarget log_target = acctlock::LogTarget::automatic;
  const std::map<std::string, acctlock::LogTarget> log_targets{
      {"auto", acctlock::LogTarget::automatic},
      {"journal", acctlock::LogTarget::journal},
      {"stderr", acctlock::LogTarget::stderr}};
  app.add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config,
               "Check the configuration file, print every problem and exit");
  app.add_option("--log-target", log_target,
                 "Where lock events go: journal, stderr, or auto (the journal when stderr is "
                 "systemd's journal stream)")
      ->transform(CLI::CheckedTransformer(log_targets, CLI::ignore_case))
      ->default_str("auto");
  std::optional<int> metrics_fd;
  app.add_option("--metrics-fd", metrics_fd,
                 "Serve GET /metrics on this inherited listening TCP socket (without systemd's "
                 "acctlockd-metrics.socket)")
      ->check(CLI::NonNegativeNumber);
  app.set_version_flag("--version", std::string("acctlockd ") + ACCTLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);

  // Without an explicit --config the daemon may run on defaults, like
  // pam_faillock without faillock.conf; a file named on the command line must exist.
  const bool missing_ok = app.count("--config") == 0;
  auto parsed = acctlock::load_config(config_path, missing_ok);
  acctlock::check_config_groups(parsed, config_path);
  if (check_config && missing_ok && ::access(config_path.c_str(), F_OK) != 0 && errno == ENOENT) {
    // Running on defaults is allowed, but "OK" for a file that is not there
    // would hide a typo in the path or a config installed elsewhere.
    parsed.diagnostics.push_back({acctlock::Diagnostic::Severity::warning, config_path, 0, "",
                                  "does not exist; acctlockd would run on the defaults"});
  }
  for (const auto& diagnostic : parsed.diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
  }
  for (const auto& note : acctlock::migration_notes(parsed.options)) {
    std::cerr << config_path << ": note: " << note << '\n';
  }
  if (check_config) {
    if (parsed.has_errors()) return kConfigErrors;
    if (parsed.has_warnings()) return kConfigWarnings;
    std::cout << config_path << ": OK\n";
    return kConfigOk;
  }
  if (parsed.has_errors()) {
    std::cerr << "acctlockd: not starting: " << config_path << " has errors\n";
    return 1;
  }
  return acctlock::run_daemon({parsed.options, config_path, missing_ok, log_target, metrics_fd});
}
