// SPDX-License-Identifier: BSD-3-Clause
// Network namespaces for one test, held by processes the test starts and
// stops by pid: nothing is named in /run/netns, and each namespace, with the
// veth ends and addresses in it, disappears when its holder is killed. The
// host's own network namespace is never changed: veth pairs are created
// from inside one test namespace with the peer placed straight into another.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"

namespace acctlock::test {

class NetworkNamespace {
 public:
  // Starts the holder. ok() says whether the namespace exists; why_not()
  // says why it does not (not root, no namespaces in a build chroot).
  NetworkNamespace();
  ~NetworkNamespace();  // SIGKILL to the holder, then waits for it
  NetworkNamespace(const NetworkNamespace&) = delete;
  NetworkNamespace& operator=(const NetworkNamespace&) = delete;

  bool ok() const { return holder_ > 0; }
  pid_t holder() const { return holder_; }
  const std::string& why_not() const { return why_not_; }
  // The namespace as /proc names it, for nsenter --net= and setns.
  std::string path() const;

  // Runs `argv` (argv[0] a path) inside the namespace, through nsenter, as
  // run_command does.
  CommandResult run(const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30),
                    const std::vector<std::string>& extra_env = {}) const;
  // `ip` with `arguments` (split at spaces) inside the namespace; false, with
  // its message in `*error`, when it fails.
  bool ip(const std::string& arguments, std::string* error) const;

 private:
  pid_t holder_ = -1;
  std::string why_not_;
};

// A veth pair: `name_here` in `here`, `name_there` in `there`. Both ends
// are left down, without addresses.
bool add_veth_pair(const NetworkNamespace& here, const std::string& name_here,
                   const NetworkNamespace& there, const std::string& name_there,
                   std::string* error);

}  // namespace acctlock::test
