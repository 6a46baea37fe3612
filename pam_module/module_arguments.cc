// SPDX-License-Identifier: BSD-3-Clause
#include "pam_module/module_arguments.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace acctlock::pam {
namespace {

// The "PAM module" section of etc/acctlock.conf: what a service's line may
// change for that service alone.
constexpr std::array<std::string_view, 6> kModuleArgumentKeys{
    "silent",
    "debug",
    "timeout_ms",
    "on_unavailable",
    "account_deny_locked",
    "keep_lock_on_password_change",
};

struct Argument {
  std::string_view key;
  std::optional<std::string_view> value;  // nullopt for a bare word
};

Argument split(std::string_view argument) {
  const auto equals = argument.find('=');
  if (equals == std::string_view::npos) return {argument, std::nullopt};
  return {argument.substr(0, equals), argument.substr(equals + 1)};
}

std::optional<AuthMode> mode_named(std::string_view word) {
  if (word == "preauth") return AuthMode::preauth;
  if (word == "authfail") return AuthMode::authfail;
  if (word == "authsucc") return AuthMode::authsucc;
  return std::nullopt;
}

bool is_module_argument_key(std::string_view key) {
  return std::find(kModuleArgumentKeys.begin(), kModuleArgumentKeys.end(), key) !=
         kModuleArgumentKeys.end();
}

}  // namespace

std::span<const std::string_view> module_argument_keys() noexcept {
  return kModuleArgumentKeys;
}

Settings resolve_settings(std::span<const char* const> arguments,
                          const std::string& default_config) {
  Settings settings;
  settings.config_path = default_config;
  for (const char* raw : arguments) {
    const Argument argument = split(raw);
    if (argument.key == "conf" && argument.value && !argument.value->empty()) {
      settings.config_path = std::string(*argument.value);
    }
  }

  ParsedConfig parsed = load_config(settings.config_path, /*missing_ok=*/true);
  settings.options = std::move(parsed.options);
  settings.config_has_errors = parsed.has_errors();
  for (const Diagnostic& diagnostic : parsed.diagnostics) {
    settings.warnings.push_back(diagnostic.to_string());
  }

  for (const char* raw : arguments) {
    const std::string_view text = raw;
    const Argument argument = split(text);
    const auto ignored = [&](std::string_view why) {
      settings.warnings.push_back("module argument \"" + std::string(text) +
                                  "\" ignored: " + std::string(why));
    };
    if (argument.key == "conf") {
      if (!argument.value || argument.value->empty()) ignored("conf needs a file (conf=FILE)");
      continue;
    }
    if (const auto mode = mode_named(text)) {
      if (settings.mode != AuthMode::none && settings.mode != *mode) {
        ignored("only one of preauth, authfail and authsucc may be given");
      } else {
        settings.mode = *mode;
      }
      continue;
    }
    if (argument.key == "socket" || argument.key == "event_socket") {
      std::string error;
      if (!argument.value) {
        ignored("needs a path (socket=PATH)");
      } else if (set_option(settings.options, "event_socket", argument.value, &error) !=
                 SetResult::ok) {
        ignored(error);
      }
      continue;
    }
    if (!is_module_argument_key(argument.key)) {
      std::string dummy_error;
      Options scratch;
      if (set_option(scratch, argument.key, argument.value, &dummy_error) ==
          SetResult::unknown_key) {
        ignored("unknown option");
      } else {
        ignored("acctlockd applies this key from " + settings.config_path +
                "; it has no effect as a module argument");
      }
      continue;
    }
    std::string error;
    if (set_option(settings.options, argument.key, argument.value, &error) != SetResult::ok) {
      ignored(error);
    }
  }
  return settings;
}

}  // namespace acctlock::pam
