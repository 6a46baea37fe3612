// SPDX-License-Identifier: BSD-3-Clause
// acctlock doctor's reading of PAM stacks: includes followed as libpam does,
// and each misplacement named by file and line. The stacks are written by
// the tests into temp dirs; a real pam-auth-update's output is checked in
// tests/debian/pam_auth_update_test.sh.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cli/pam_stack_check.h"
#include "tests/support/temp_dir.h"

namespace acctlock::cli {
namespace {

using test::TempDir;
using test::write_file;
using ::testing::HasSubstr;
using Severity = Finding::Severity;

// common-auth as pam-auth-update writes it with the three acctlock profiles.
constexpr const char* kCommonAuth =
    "# comment\n"
    "auth\trequired\tpam_acctlock.so preauth\n"
    "auth\t[success=2 default=ignore]\tpam_unix.so nullok\n"
    "auth\t[default=die]\tpam_acctlock.so authfail\n"
    "auth\trequisite\t\t\tpam_deny.so\n"
    "auth\trequired\t\t\tpam_permit.so\n"
    "auth\toptional\tpam_acctlock.so authsucc\n";
constexpr const char* kCommonAccount =
    "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n"
    "account\trequisite\t\t\tpam_deny.so\n"
    "account\trequired\t\t\tpam_permit.so\n"
    "account\trequired\tpam_acctlock.so\n";
constexpr const char* kCommonPassword =
    "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n"
    "password\trequisite\t\t\tpam_deny.so\n"
    "password\trequired\t\t\tpam_permit.so\n"
    "password\toptional\tpam_acctlock.so\n";

class PamStackCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write("common-auth", kCommonAuth);
    write("common-account", kCommonAccount);
    write("common-password", kCommonPassword);
  }
  void write(const std::string& name, const std::string& text) { write_file(dir / name, text); }
  std::string path(const std::string& name) const { return dir / name; }

  std::vector<Finding> of(Severity severity) const {
    std::vector<Finding> found;
    for (const auto& finding : check_pam_dir(dir.path().string())) {
      if (finding.severity == severity) found.push_back(finding);
    }
    return found;
  }

  TempDir dir;
};

TEST_F(PamStackCheckTest, DebiansLayoutThroughEveryIncludeFormIsRight) {
  write("sshd",
        "@include common-auth\naccount required pam_nologin.so\n@include common-account\n"
        "@include common-password\n");
  write("login",
        "auth include common-auth\naccount include common-account\n"
        "password include common-password\n");
  write("su",
        "auth substack common-auth\naccount include common-account\n"
        "password include common-password\n");
  EXPECT_THAT(of(Severity::problem), ::testing::IsEmpty());
  EXPECT_THAT(of(Severity::warning), ::testing::IsEmpty());
  // Each service's preauth and authfail were found, through its include.
  const auto ok = of(Severity::ok);
  EXPECT_EQ(ok.size(), 6u);
  for (const auto& finding : ok) EXPECT_THAT(finding.where, HasSubstr("common-auth:"));
}

TEST_F(PamStackCheckTest, ExpandedStackKeepsFileAndLineOfEachLine) {
  write("sshd",
        "# first\n@include common-auth\n-auth optional pam_gnome_keyring.so \\\n  auto_start\n");
  std::vector<Finding> findings;
  const auto auth = expand_stack(dir.path().string(), "sshd", "auth", findings);
  ASSERT_EQ(auth.size(), 7u);
  EXPECT_EQ(auth[1].where(), path("common-auth") + ":3");
  EXPECT_EQ(auth[1].control, "[success=2 default=ignore]");
  EXPECT_EQ(auth[1].module, "pam_unix.so");
  // A leading '-' and a continued line: one line, at the line it starts.
  EXPECT_EQ(auth[6].type, "auth");
  EXPECT_EQ(auth[6].where(), path("sshd") + ":3");
  EXPECT_EQ(auth[6].arguments, std::vector<std::string>{"auto_start"});
  EXPECT_TRUE(findings.empty());
}

TEST_F(PamStackCheckTest, AuthfailReachedAfterARightPasswordIsAProblem) {
  // pam_unix `required` goes on to the next line on success too: every
  // good login would be counted as a failure.
  write("common-auth",
        "auth required pam_acctlock.so preauth\n"
        "auth required pam_unix.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "auth optional pam_acctlock.so authsucc\n");
  write("sshd", "@include common-auth\n@include common-account\n@include common-password\n");
  const auto problems = of(Severity::problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].where, path("common-auth") + ":3");
  EXPECT_THAT(problems[0].text, HasSubstr("also runs after a right password"));
}

TEST_F(PamStackCheckTest, ASuccessJumpThatLandsOnAuthfailIsAProblem) {
  write("common-auth",
        "auth required pam_acctlock.so preauth\n"
        "auth [success=1 default=ignore] pam_unix.so\n"
        "auth requisite pam_deny.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "auth required pam_permit.so\n");
  write("sshd", "@include common-auth\n@include common-account\n@include common-password\n");
  const auto problems = of(Severity::problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].where, path("common-auth") + ":4");
}

TEST_F(PamStackCheckTest, SufficientPasswordModuleEndsTheStackBeforeAuthfail) {
  write("sshd",
        "auth required pam_acctlock.so preauth\n"
        "auth sufficient pam_unix.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "auth optional pam_acctlock.so authsucc\n"
        "@include common-account\n@include common-password\n");
  EXPECT_THAT(of(Severity::problem), ::testing::IsEmpty());
}

TEST_F(PamStackCheckTest, PreauthAfterThePasswordOrMissingIsNamed) {
  write("sshd",
        "auth [success=1 default=ignore] pam_unix.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "auth required pam_acctlock.so preauth\n"
        "@include common-account\n@include common-password\n");
  write("login",
        "auth [success=1 default=ignore] pam_unix.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "@include common-account\n@include common-password\n");
  const auto problems = of(Severity::problem);
  ASSERT_EQ(problems.size(), 2u);
  // Sorted by file: login first.
  EXPECT_EQ(problems[0].where, path("login"));
  EXPECT_THAT(problems[0].text, HasSubstr("no `auth required pam_acctlock.so preauth` before "
                                          "pam_unix.so (" +
                                          path("login") + ":1)"));
  EXPECT_EQ(problems[1].where, path("sshd") + ":3");
  EXPECT_THAT(problems[1].text, HasSubstr("preauth comes after pam_unix.so"));
}

TEST_F(PamStackCheckTest, OptionalPreauthIsAProblem) {
  write("sshd",
        "auth optional pam_acctlock.so preauth\n"
        "auth [success=1 default=ignore] pam_unix.so\n"
        "auth [default=die] pam_acctlock.so authfail\n"
        "@include common-account\n@include common-password\n");
  const auto problems = of(Severity::problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].where, path("sshd") + ":1");
  EXPECT_THAT(problems[0].text, HasSubstr("is `optional`"));
}

TEST_F(PamStackCheckTest, ServicesWithoutTheModuleAreWarnedOnlyIfTheyCheckPasswords) {
  write("common-auth",
        "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
        "auth required pam_permit.so\n");
  write("sshd", "@include common-auth\n");
  write("cron", "account required pam_access.so\nsession required pam_loginuid.so\n");
  const auto warnings = of(Severity::warning);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].where, path("sshd"));
  EXPECT_THAT(warnings[0].text, HasSubstr("without pam_acctlock"));
  EXPECT_THAT(of(Severity::problem), ::testing::IsEmpty());
}

TEST_F(PamStackCheckTest, MissingAccountAndPasswordLinesAreWarnings) {
  write("sshd", "@include common-auth\naccount required pam_unix.so\n");
  const auto warnings = of(Severity::warning);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_THAT(warnings[0].text, HasSubstr("no `account required pam_acctlock.so`"));
  EXPECT_THAT(warnings[1].text, HasSubstr("no `password optional pam_acctlock.so`"));
}

TEST_F(PamStackCheckTest, AnIncludeLoopOrAMissingFileIsReportedNotFollowedForever) {
  write("sshd", "@include loop-a\n");
  write("loop-a", "auth include loop-b\n");
  write("loop-b", "auth include loop-a\n");
  write("login", "@include no-such-file\n");
  const auto problems = of(Severity::problem);
  ASSERT_GE(problems.size(), 2u);
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const Finding& f) {
    return f.text.find("nest deeper") != std::string::npos;
  }));
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const Finding& f) {
    return f.where == path("no-such-file") && f.text == "cannot be read";
  }));
}

}  // namespace
}  // namespace acctlock::cli
