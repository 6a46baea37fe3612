// SPDX-License-Identifier: BSD-3-Clause
// What one line of /etc/pam.d asks of pam_acctlock.so, and the settings that
// result from acctlock.conf and those arguments together.
//
// Pure code, unit-tested without libpam: the module turns argv into Settings
// here and only then talks to PAM and the daemon.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "common/options.h"

namespace acctlock::pam {

// The auth-phase mode, as pam_faillock names them.
enum class AuthMode {
  none,      // no mode given: only valid outside the auth phase
  preauth,   // before the password: refuse a locked account
  authfail,  // after a failed password: record the failure
  authsucc,  // after a good password: record the success
};

struct Settings {
  AuthMode mode = AuthMode::none;
  std::string config_path;  // conf=FILE, or the built-in default
  Options options;
  // One line each, ready for syslog: the config file's diagnostics and
  // arguments that were ignored. The module logs them and goes on, as
  // pam_faillock does; a login must not fail over a typo in an option.
  std::vector<std::string> warnings;
  bool config_has_errors = false;
};

// Reads `conf=` from `arguments` (or uses `default_config`), loads that file
// (a missing file means defaults) and applies the other arguments over it.
// Arguments may set only the keys of acctlock.conf's "PAM module" section and
// `socket=` (the event socket); a lockout rule given as an argument is
// reported and ignored because acctlockd, not the module, applies the rules.
Settings resolve_settings(std::span<const char* const> arguments,
                          const std::string& default_config);

// The keys a module argument may set, besides conf= and socket=.
std::span<const std::string_view> module_argument_keys() noexcept;

}  // namespace acctlock::pam
