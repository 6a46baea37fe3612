// SPDX-License-Identifier: BSD-3-Clause
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/options.h"
#include "pam_module/module_arguments.h"
#include "tests/support/temp_dir.h"

namespace acctlock::pam {
namespace {

using test::TempDir;
using test::write_file;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ModuleArgumentsTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string missing_config_ = dir_ / "absent.conf";

  // Settings and what the module would log, in order.
  struct Resolved {
    Settings settings;
    std::vector<std::string> warnings;
    bool has_errors = false;

    const module_options::ModuleOptions& options() const { return settings.options; }
  };

  Resolved resolve(std::vector<const char*> arguments) {
    Resolved resolved;
    resolve_settings(static_cast<int>(arguments.size()), arguments.data(), missing_config_.c_str(),
                     resolved.settings, collect, &resolved);
    return resolved;
  }

  static void collect(void* context, Severity severity, const char* line) {
    auto* resolved = static_cast<Resolved*>(context);
    resolved->warnings.emplace_back(line);
    resolved->has_errors = resolved->has_errors || severity == Severity::error;
  }
};

TEST_F(ModuleArgumentsTest, ModesAreRecognised) {
  EXPECT_EQ(resolve({"preauth"}).settings.mode, AuthMode::preauth);
  EXPECT_EQ(resolve({"authfail"}).settings.mode, AuthMode::authfail);
  EXPECT_EQ(resolve({"authsucc"}).settings.mode, AuthMode::authsucc);
  EXPECT_EQ(resolve({}).settings.mode, AuthMode::none);
}

TEST_F(ModuleArgumentsTest, ASecondDifferentModeIsIgnoredWithAWarning) {
  const Resolved settings = resolve({"preauth", "authfail"});
  EXPECT_EQ(settings.settings.mode, AuthMode::preauth);
  EXPECT_THAT(settings.warnings, ElementsAre(HasSubstr("\"authfail\" ignored")));
}

TEST_F(ModuleArgumentsTest, AMissingConfigFileMeansDefaults) {
  const Resolved settings = resolve({"preauth"});
  EXPECT_TRUE(settings.warnings.empty());
  EXPECT_EQ(settings.options().event_socket, Options{}.event_socket);
  EXPECT_EQ(settings.options().timeout_ms, Options{}.timeout.count());
}

TEST_F(ModuleArgumentsTest, ConfNamesTheFileAndArgumentsOverrideIt) {
  const std::string conf = dir_ / "acctlock.conf";
  write_file(conf, "event_socket = /srv/a.sock\ntimeout_ms = 500\nsilent\n");
  const std::string conf_argument = "conf=" + conf;
  const Resolved from_file = resolve({conf_argument.c_str()});
  EXPECT_EQ(std::string(from_file.settings.config_path), conf);
  EXPECT_TRUE(from_file.warnings.empty());
  EXPECT_STREQ(from_file.options().event_socket, "/srv/a.sock");
  EXPECT_EQ(from_file.options().timeout_ms, 500u);
  EXPECT_TRUE(from_file.options().silent);

  const Resolved overridden =
      resolve({"timeout_ms=250", conf_argument.c_str(), "socket=/srv/b.sock", "silent=no",
               "on_unavailable=deny", "debug"});
  EXPECT_TRUE(overridden.warnings.empty());
  EXPECT_STREQ(overridden.options().event_socket, "/srv/b.sock");
  EXPECT_EQ(overridden.options().timeout_ms, 250u);
  EXPECT_FALSE(overridden.options().silent);
  EXPECT_TRUE(overridden.options().debug);
  EXPECT_TRUE(overridden.options().deny_when_unavailable);
}

TEST_F(ModuleArgumentsTest, ConfigFileProblemsAreReportedWithFileAndLine) {
  const std::string conf = dir_ / "acctlock.conf";
  write_file(conf, "timeout_ms = soon\n");
  const std::string conf_argument = "conf=" + conf;
  const Resolved settings = resolve({conf_argument.c_str()});
  EXPECT_TRUE(settings.has_errors);
  EXPECT_THAT(settings.warnings,
              ElementsAre(conf + ":1: timeout_ms: \"soon\" is not a whole number of milliseconds "
                                 "from 1 to 60000"));
  EXPECT_EQ(settings.options().timeout_ms, Options{}.timeout.count());
}

TEST_F(ModuleArgumentsTest, LockoutRulesAsArgumentsAreIgnoredAndSaySo) {
  const Resolved settings = resolve({"deny=5", "unlock_time=1h"});
  ASSERT_EQ(settings.warnings.size(), 2u);
  EXPECT_THAT(settings.warnings[0], HasSubstr("\"deny=5\" ignored: acctlockd applies this key"));
  EXPECT_THAT(settings.warnings[1], HasSubstr("\"unlock_time=1h\" ignored"));
}

TEST_F(ModuleArgumentsTest, UnknownAndMalformedArgumentsAreIgnoredWithAWarning) {
  const Resolved settings = resolve({"frobnicate", "timeout_ms=fast", "socket", "conf="});
  EXPECT_EQ(settings.options().timeout_ms, Options{}.timeout.count());
  EXPECT_EQ(settings.options().event_socket, Options{}.event_socket);
  EXPECT_THAT(settings.warnings, ElementsAre(HasSubstr("\"frobnicate\" ignored: unknown option"),
                                             HasSubstr("\"timeout_ms=fast\" ignored"),
                                             HasSubstr("\"socket\" ignored: needs a path"),
                                             HasSubstr("\"conf=\" ignored")));
}

TEST_F(ModuleArgumentsTest, TheModulesKeysInTheFileAreReadAsTheDaemonReadsThem) {
  // The daemon's keys and sections are acctlockd's to check; the module
  // reads its own keys at the top and reports the problems with those.
  const std::string conf = dir_ / "acctlock.conf";
  write_file(conf,
             "deny = 5  # a rule\n"
             "debug\r\n"
             "timeout_ms = 99999\n"
             "on_unavailable = maybe\n"
             "event_socket = relative.sock\n"
             "silent =\n"
             "account_deny_locked yes\n"
             "frobnicate = 1\n"
             "trusted_sources = 10.0.0.0/8 # the office\n"
             "keep_lock_on_password_change = true\n"
             "timeout_ms\n"
             "[service sshd]\n"
             "timeout_ms = 5\n"
             "deny = 2\n");
  const std::string conf_argument = "conf=" + conf;
  const Resolved settings = resolve({conf_argument.c_str()});
  EXPECT_THAT(
      settings.warnings,
      ElementsAre(conf + ":3: timeout_ms: \"99999\" is too large: expected a whole number of "
                         "milliseconds from 1 to 60000",
                  conf + ":4: on_unavailable: \"maybe\" is not allow or deny",
                  conf + ":5: event_socket: \"relative.sock\" is not an absolute path",
                  conf + ":6: silent: no value after \"=\"; expected yes or no",
                  conf + ":7: account_deny_locked: expected \"=\" between the key and its value",
                  conf + ":8: frobnicate: unknown key, ignored",
                  conf + ":11: timeout_ms: needs a value (timeout_ms = N)"));
  EXPECT_TRUE(settings.options().debug);
  EXPECT_TRUE(settings.options().keep_lock_on_password_change);
  EXPECT_FALSE(settings.options().silent);
  EXPECT_EQ(settings.options().timeout_ms, 2000u);  // not the section's
  EXPECT_STREQ(settings.options().event_socket, "/run/acctlock/event.sock");

  // The daemon's parser says the same of the module's keys.
  const ParsedConfig parsed = load_config(conf);
  std::vector<std::string> daemon_says;
  for (const Diagnostic& diagnostic : parsed.diagnostics) {
    // Line 12 opens a section: what follows is the daemon's alone.
    if (diagnostic.line < 12 &&
        module_options::find_key(diagnostic.key.data(), diagnostic.key.size()) != nullptr) {
      daemon_says.push_back(diagnostic.to_string());
    }
  }
  std::vector<std::string> module_says;
  for (const std::string& line : settings.warnings) {
    if (line.find("frobnicate") == std::string::npos) module_says.push_back(line);
  }
  EXPECT_EQ(module_says, daemon_says);
}

TEST_F(ModuleArgumentsTest, AnUnreadableConfigFileIsReportedAndDefaultsApply) {
  const std::string directory = dir_.path().string();
  const std::string conf_argument = "conf=" + directory;
  const Resolved settings = resolve({conf_argument.c_str(), "preauth"});
  EXPECT_TRUE(settings.has_errors);
  EXPECT_THAT(settings.warnings, ElementsAre(directory + ": cannot read: Is a directory"));
  EXPECT_EQ(settings.settings.mode, AuthMode::preauth);
  EXPECT_EQ(settings.options().timeout_ms, 2000u);
}

TEST_F(ModuleArgumentsTest, TheModulesKeysAreTheOptionTablesWithItsDefaults) {
  // module_options.h names the keys the module reads; options.cc's table
  // must hold each with the same syntax, and Options{} the same defaults.
  for (const module_options::KeyInfo& key : module_options::kKeys) {
    const OptionInfo* found = nullptr;
    for (const OptionInfo& info : option_table()) {
      if (info.name == key.name) found = &info;
    }
    ASSERT_NE(found, nullptr) << key.name;
    EXPECT_EQ(found->is_flag, key.is_flag) << key.name;
    EXPECT_EQ(found->syntax, key.syntax) << key.name;
    EXPECT_TRUE(is_option_name(key.name, std::string_view(key.name).size())) << key.name;
  }
  for (const OptionInfo& info : option_table()) {
    EXPECT_TRUE(is_option_name(info.name.data(), info.name.size())) << info.name;
  }
  EXPECT_FALSE(is_option_name("frobnicate", 10));
  EXPECT_FALSE(is_option_name("", 0));
  EXPECT_FALSE(is_option_name("den", 3));

  const module_options::ModuleOptions module_defaults;
  const Options daemon_defaults;
  EXPECT_EQ(module_defaults.event_socket, daemon_defaults.event_socket);
  EXPECT_EQ(module_defaults.timeout_ms, daemon_defaults.timeout.count());
  EXPECT_EQ(module_defaults.silent, daemon_defaults.silent);
  EXPECT_EQ(module_defaults.debug, daemon_defaults.debug);
  EXPECT_EQ(module_defaults.deny_when_unavailable,
            daemon_defaults.on_unavailable == UnavailableAction::deny);
  EXPECT_EQ(module_defaults.account_deny_locked, daemon_defaults.account_deny_locked);
  EXPECT_EQ(module_defaults.keep_lock_on_password_change,
            daemon_defaults.keep_lock_on_password_change);
}

}  // namespace
}  // namespace acctlock::pam
