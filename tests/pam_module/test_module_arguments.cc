// SPDX-License-Identifier: BSD-3-Clause
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

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

  Settings resolve(std::vector<const char*> arguments) {
    return resolve_settings(arguments, missing_config_);
  }
};

TEST_F(ModuleArgumentsTest, ModesAreRecognised) {
  EXPECT_EQ(resolve({"preauth"}).mode, AuthMode::preauth);
  EXPECT_EQ(resolve({"authfail"}).mode, AuthMode::authfail);
  EXPECT_EQ(resolve({"authsucc"}).mode, AuthMode::authsucc);
  EXPECT_EQ(resolve({}).mode, AuthMode::none);
}

TEST_F(ModuleArgumentsTest, ASecondDifferentModeIsIgnoredWithAWarning) {
  const Settings settings = resolve({"preauth", "authfail"});
  EXPECT_EQ(settings.mode, AuthMode::preauth);
  EXPECT_THAT(settings.warnings, ElementsAre(HasSubstr("\"authfail\" ignored")));
}

TEST_F(ModuleArgumentsTest, AMissingConfigFileMeansDefaults) {
  const Settings settings = resolve({"preauth"});
  EXPECT_TRUE(settings.warnings.empty());
  EXPECT_EQ(settings.options.event_socket, Options{}.event_socket);
  EXPECT_EQ(settings.options.timeout, Options{}.timeout);
}

TEST_F(ModuleArgumentsTest, ConfNamesTheFileAndArgumentsOverrideIt) {
  const std::string conf = dir_ / "acctlock.conf";
  write_file(conf, "event_socket = /srv/a.sock\ntimeout_ms = 500\nsilent\n");
  const std::string conf_argument = "conf=" + conf;
  const Settings from_file = resolve({conf_argument.c_str()});
  EXPECT_EQ(from_file.config_path, conf);
  EXPECT_EQ(from_file.options.event_socket, "/srv/a.sock");
  EXPECT_EQ(from_file.options.timeout.count(), 500);
  EXPECT_TRUE(from_file.options.silent);

  const Settings overridden =
      resolve({"timeout_ms=250", conf_argument.c_str(), "socket=/srv/b.sock", "silent=no",
               "on_unavailable=deny", "debug"});
  EXPECT_TRUE(overridden.warnings.empty());
  EXPECT_EQ(overridden.options.event_socket, "/srv/b.sock");
  EXPECT_EQ(overridden.options.timeout.count(), 250);
  EXPECT_FALSE(overridden.options.silent);
  EXPECT_TRUE(overridden.options.debug);
  EXPECT_EQ(overridden.options.on_unavailable, UnavailableAction::deny);
}

TEST_F(ModuleArgumentsTest, ConfigFileProblemsAreReportedWithFileAndLine) {
  const std::string conf = dir_ / "acctlock.conf";
  write_file(conf, "timeout_ms = soon\n");
  const std::string conf_argument = "conf=" + conf;
  const Settings settings = resolve({conf_argument.c_str()});
  EXPECT_TRUE(settings.config_has_errors);
  EXPECT_THAT(settings.warnings, ElementsAre(HasSubstr(conf + ":1: timeout_ms: ")));
  EXPECT_EQ(settings.options.timeout, Options{}.timeout);
}

TEST_F(ModuleArgumentsTest, LockoutRulesAsArgumentsAreIgnoredAndSaySo) {
  const Settings settings = resolve({"deny=5", "unlock_time=1h"});
  EXPECT_EQ(settings.options.rules.deny, LockoutRules{}.deny);
  ASSERT_EQ(settings.warnings.size(), 2u);
  EXPECT_THAT(settings.warnings[0], HasSubstr("\"deny=5\" ignored: acctlockd applies this key"));
  EXPECT_THAT(settings.warnings[1], HasSubstr("\"unlock_time=1h\" ignored"));
}

TEST_F(ModuleArgumentsTest, UnknownAndMalformedArgumentsAreIgnoredWithAWarning) {
  const Settings settings = resolve({"frobnicate", "timeout_ms=fast", "socket", "conf="});
  EXPECT_EQ(settings.options.timeout, Options{}.timeout);
  EXPECT_EQ(settings.options.event_socket, Options{}.event_socket);
  EXPECT_THAT(settings.warnings, ElementsAre(HasSubstr("\"frobnicate\" ignored: unknown option"),
                                             HasSubstr("\"timeout_ms=fast\" ignored"),
                                             HasSubstr("\"socket\" ignored: needs a path"),
                                             HasSubstr("\"conf=\" ignored")));
}

TEST_F(ModuleArgumentsTest, EveryModuleArgumentKeyIsInTheOptionTable) {
  for (const std::string_view key : module_argument_keys()) {
    bool found = false;
    for (const OptionInfo& info : option_table()) found = found || info.name == key;
    EXPECT_TRUE(found) << key;
  }
}

}  // namespace
}  // namespace acctlock::pam
