// acctlockd: the account lockout daemon. See acctlockd(8).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

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
  app.add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config,
               "Check the configuration file, print every problem and exit");
  app.set_version_flag("--version", std::string("acctlockd ") + ACCTLOCK_VERSION);
  CLI11_PARSE(app, argc, argv);

  // Without an explicit --config the daemon may run on defaults, like
  // pam_faillock without faillock.conf; a file named on the command line must exist.
  const bool missing_ok = app.count("--config") == 0;
  const auto parsed = acctlock::load_config(config_path, missing_ok);
  for (const auto& diagnostic : parsed.diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
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
  return acctlock::run_daemon({parsed.options, config_path, missing_ok});
}
