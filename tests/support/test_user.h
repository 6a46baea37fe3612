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
};

// Adds `users` (whose names and ids must be free on the host). Call it once
// per process, before any thread starts. False, with the reason in
// `*why_not` (for GTEST_SKIP), when the process cannot do it: not root, or no
// mount namespaces here (a build chroot).
bool add_test_users(const std::vector<TestUser>& users, std::string* why_not);

}  // namespace acctlock::test
