// SPDX-License-Identifier: BSD-3-Clause
// Users that exist only for one test process: real accounts for pam_unix,
// invisible to the host.
//
// add_test_users() moves the calling process into a private mount namespace
// and bind-mounts copies of /etc/passwd, /etc/shadow and /etc/group, with the
// users added, over the originals. The host's files are never written, and
// nothing mounted here propagates back. Every process the test starts
// afterwards (acctlockd, setpriv, valgrind, pamtester) inherits the namespace
// and sees the users too. glibc's nss_files reads the files afresh, and nscd
// is not used by these tests.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace acctlock::test {

struct TestUser {
  std::string name;
  uid_t uid;
  gid_t gid;  // a group of the same name is added with this gid
  std::string password;
  // nologin by default; a test that runs a command over a real login (sshd)
  // gives the user a shell.
  std::string shell = "/usr/sbin/nologin";
};

// Adds `users`, whose names and ids must be free. Call it before any thread
// starts (unshare(CLONE_NEWNS) refuses a multithreaded process); a later call
// adds more users on top of the earlier ones. False, with the reason in
// `*why_not` (for GTEST_SKIP), when the process cannot do it: not root, no
// mount namespaces here (a build chroot), or a name or id already taken.
bool add_test_users(const std::vector<TestUser>& users, std::string* why_not);

// `absolute_path` as the host sees it, outside the namespace: for tests that
// show the host's files were not touched. Empty when it cannot be read, or
// before add_test_users ran. (/proc/1/root would do the same where PID 1 may
// be inspected; in some sandboxes it may not.)
std::string read_host_file(const std::string& absolute_path);

}  // namespace acctlock::test
