// SPDX-License-Identifier: BSD-3-Clause
// add_test_users: the users are real for this process and its children, real
// enough for pam_unix to check their passwords, and absent from the host.
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace acctlock::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const TestUser kFirst{"acctlock-tu1", 60431, 60431, "first's right password"};
const TestUser kSecond{"acctlock-tu2", 60432, 60433, "second's right password"};

// Answers every hidden prompt with the password, as a login program would.
int answer_with_password(int count, const pam_message** messages, pam_response** responses,
                         void* password) {
  auto* replies =
      static_cast<pam_response*>(std::calloc(static_cast<size_t>(count), sizeof(pam_response)));
  if (replies == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    if (messages[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
      // libpam frees each answer.
      replies[i].resp = strdup(static_cast<const std::string*>(password)->c_str());
    }
  }
  *responses = replies;
  return PAM_SUCCESS;
}

class TestUserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { users_ready_ = add_test_users({kFirst}, &skip_reason_); }

  void SetUp() override {
    if (!users_ready_) GTEST_SKIP() << skip_reason_;
  }

  // auth then account through pam_unix alone, as the PAM module's tests and
  // the benchmark use it.
  int unix_login(const std::string& user, std::string password) {
    write_file(dir_ / "unix-only",
               "auth    required pam_unix.so nodelay\naccount required pam_unix.so\n");
    const pam_conv conversation{answer_with_password, &password};
    pam_handle_t* pamh = nullptr;
    int status =
        pam_start_confdir("unix-only", user.c_str(), &conversation, dir_.path().c_str(), &pamh);
    if (status != PAM_SUCCESS) return status;
    status = pam_authenticate(pamh, 0);
    if (status == PAM_SUCCESS) status = pam_acct_mgmt(pamh, 0);
    pam_end(pamh, status);
    return status;
  }

  static inline bool users_ready_ = false;
  static inline std::string skip_reason_;
  TempDir dir_;
};

TEST_F(TestUserTest, TheUserAndItsGroupResolveThroughNss) {
  const passwd* entry = getpwnam(kFirst.name.c_str());
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->pw_uid, kFirst.uid);
  EXPECT_EQ(entry->pw_gid, kFirst.gid);
  EXPECT_STREQ(entry->pw_shell, "/usr/sbin/nologin");
  const passwd* by_uid = getpwuid(kFirst.uid);
  ASSERT_NE(by_uid, nullptr);
  EXPECT_EQ(by_uid->pw_name, kFirst.name);
  const group* own_group = getgrnam(kFirst.name.c_str());
  ASSERT_NE(own_group, nullptr);
  EXPECT_EQ(own_group->gr_gid, kFirst.gid);
}

TEST_F(TestUserTest, ChildProcessesSeeTheUser) {
  const CommandResult result = run_command({"/usr/bin/getent", "passwd", kFirst.name});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(kFirst.name + ":x:60431:60431:"));
}

TEST_F(TestUserTest, PamUnixAcceptsTheRightPasswordAndRefusesAWrongOne) {
  EXPECT_EQ(unix_login(kFirst.name, kFirst.password), PAM_SUCCESS);
  EXPECT_EQ(unix_login(kFirst.name, "not " + kFirst.password), PAM_AUTH_ERR);
  EXPECT_EQ(unix_login(kFirst.name, ""), PAM_AUTH_ERR);
}

TEST_F(TestUserTest, TheHostsFilesAreUntouched) {
  ASSERT_THAT(read_file("/etc/shadow"), HasSubstr(kFirst.name + ":$y$"));
  for (const char* file : {"passwd", "shadow", "group"}) {
    const std::string host_copy = read_host_file(std::string("/etc/") + file);
    ASSERT_THAT(host_copy, HasSubstr("root:")) << file;
    EXPECT_THAT(host_copy, Not(HasSubstr(kFirst.name))) << file;
  }
}

// The copy holding the host's real hashes is unlinked once mounted: the
// kernel marks the mount's source "//deleted" (proc(5), mountinfo field 4).
TEST_F(TestUserTest, NoCopyOfTheShadowFileStaysOnDisk) {
  std::istringstream mounts(read_file("/proc/self/mountinfo"));
  std::string line;
  int shadow_mounts = 0;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, source, mount_point;
    fields >> id >> parent >> device >> source >> mount_point;
    if (mount_point != "/etc/shadow") continue;
    ++shadow_mounts;
    EXPECT_TRUE(source.ends_with("//deleted")) << line;
  }
  EXPECT_GE(shadow_mounts, 1);
}

TEST_F(TestUserTest, ALaterCallAddsUsersAndKeepsTheEarlierOnes) {
  std::string why_not;
  ASSERT_TRUE(add_test_users({kSecond}, &why_not)) << why_not;
  EXPECT_EQ(unix_login(kSecond.name, kSecond.password), PAM_SUCCESS);
  EXPECT_EQ(unix_login(kFirst.name, kFirst.password), PAM_SUCCESS);
  ASSERT_NE(getgrgid(kSecond.gid), nullptr);
  EXPECT_EQ(getgrgid(kSecond.gid)->gr_name, kSecond.name);
}

TEST_F(TestUserTest, ANameOrIdTakenAlreadyIsRefusedWithTheReason) {
  std::string why_not;
  EXPECT_FALSE(add_test_users({{"root", 60439, 60439, "x"}}, &why_not));
  EXPECT_THAT(why_not, HasSubstr("root"));
  why_not.clear();
  EXPECT_FALSE(add_test_users({{"acctlock-tu9", 0, 60439, "x"}}, &why_not));
  EXPECT_THAT(why_not, HasSubstr("acctlock-tu9"));
  EXPECT_FALSE(add_test_users({{kFirst.name, 60438, 60438, "x"}}, &why_not));
}

}  // namespace
}  // namespace acctlock::test
