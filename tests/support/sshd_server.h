// SPDX-License-Identifier: BSD-3-Clause
// A real OpenSSH sshd for end-to-end tests: its own host key and config in a
// temp dir, run with `sshd -D -e` inside a network namespace the test made,
// started and stopped by its pid. Nothing of the host's sshd is used: not
// its config, not its host keys, not a running service.
//
// sshd reads its PAM stack from /etc/pam.d/sshd and has no way to be told
// another directory, so prepare_private_system_for_sshd() gives the test
// process (already in the private mount namespace that add_test_users made)
// its own /etc/pam.d, /run and login records; sshd and everything else the
// test starts afterwards inherit them.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/support/network_namespace.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {

// In the calling process's private mount namespace (call add_test_users
// first): mounts `pam_dir` over /etc/pam.d, a fresh tmpfs over /run with an
// empty /run/sshd (sshd's privilege separation directory) in it, and empty
// private copies over /var/log/wtmp, /var/log/btmp and /var/log/lastlog
// (those that exist), so that nothing sshd records reaches the host. The
// tmpfs also hides the host's /dev/log target: what pam_unix logs about the
// test's logins goes nowhere instead of into the host's auth log.
bool prepare_private_system_for_sshd(const std::string& pam_dir, std::string* why_not);

// Whether /usr/sbin/sshd and /usr/bin/ssh are installed (openssh-server,
// openssh-client); the reason in `*why_not` otherwise.
bool openssh_installed(std::string* why_not);

class SshdServer {
 public:
  // Generates an ed25519 host key in `dir` and writes a config that listens
  // on `port` of every address (IPv4 and IPv6) of the namespace, allows
  // only password authentication through PAM (service sshd) and logs to
  // stderr; `extra_config` is appended.
  SshdServer(const TempDir& dir, const NetworkNamespace& where, int port,
             std::string extra_config = {});
  ~SshdServer();  // stop()
  SshdServer(const SshdServer&) = delete;
  SshdServer& operator=(const SshdServer&) = delete;

  // Starts sshd with `environment` ("NAME=value") added and waits until it
  // has bound its listening sockets. Fails the test (ADD_FAILURE) and
  // returns false when it exits or stays silent instead.
  bool start(const std::vector<std::string>& environment = {});
  // SIGTERM and wait (SIGKILL after a deadline); the waitpid status.
  int stop();

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  // Everything sshd logged so far.
  std::string log() const;
  // known_hosts lines that pin this server's host key for `addresses`.
  std::string known_hosts(const std::vector<std::string>& addresses) const;

 private:
  const NetworkNamespace& where_;
  int port_;
  std::string config_path_;
  std::string host_key_path_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace acctlock::test
