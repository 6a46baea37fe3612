// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/network_namespace.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace acctlock::test {
namespace {

constexpr const char* kNsenter = "/usr/bin/nsenter";
constexpr const char* kIp = "/usr/sbin/ip";

}  // namespace

NetworkNamespace::NetworkNamespace() {
  if (geteuid() != 0) {
    why_not_ = "needs root, to make network namespaces";
    return;
  }
  if (access(kIp, X_OK) != 0 || access(kNsenter, X_OK) != 0) {
    why_not_ = std::string(kIp) + " or " + kNsenter + " is missing (iproute2, util-linux)";
    return;
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    why_not_ = std::string("pipe2: ") + std::strerror(errno);
    return;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    why_not_ = std::string("fork: ") + std::strerror(errno);
    close(ready[0]);
    close(ready[1]);
    return;
  }
  if (pid == 0) {
    // The holder: only async-signal-safe calls from here. It dies with the
    // test process, so a crashed test leaves no namespace behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char state = unshare(CLONE_NEWNET) == 0 ? 'R' : 'E';
    const int saved_errno = errno;
    (void)!write(ready[1], &state, 1);
    if (state != 'R') (void)!write(ready[1], &saved_errno, sizeof saved_errno);
    close(ready[1]);
    if (state != 'R') _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  pollfd entry{ready[0], POLLIN, 0};
  char state = 0;
  int child_errno = 0;
  if (poll(&entry, 1, 10'000) == 1 && read(ready[0], &state, 1) == 1 && state == 'R') {
    holder_ = pid;
  } else {
    if (state == 'E' && read(ready[0], &child_errno, sizeof child_errno) == sizeof child_errno) {
      why_not_ =
          std::string("cannot make a network namespace: unshare: ") + std::strerror(child_errno);
    } else {
      why_not_ = "the network namespace holder did not start";
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  close(ready[0]);
}

NetworkNamespace::~NetworkNamespace() {
  if (holder_ <= 0) return;
  kill(holder_, SIGKILL);
  waitpid(holder_, nullptr, 0);
}

std::string NetworkNamespace::path() const {
  return "/proc/" + std::to_string(holder_) + "/ns/net";
}

CommandResult NetworkNamespace::run(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout,
                                    const std::vector<std::string>& extra_env) const {
  std::vector<std::string> words{kNsenter, "--net=" + path(), "--"};
  words.insert(words.end(), argv.begin(), argv.end());
  return run_command(words, timeout, extra_env);
}

bool NetworkNamespace::ip(const std::string& arguments, std::string* error) const {
  std::vector<std::string> argv{kIp};
  std::istringstream words(arguments);
  for (std::string word; words >> word;) argv.push_back(word);
  const CommandResult result = run(argv, std::chrono::seconds(10));
  if (result.exit_code == 0) return true;
  *error = "ip " + arguments + ": " + (result.exit_code < 0 ? "timed out" : result.err);
  return false;
}

bool add_veth_pair(const NetworkNamespace& here, const std::string& name_here,
                   const NetworkNamespace& there, const std::string& name_there,
                   std::string* error) {
  // The holder's pid names the peer's namespace without a file in /run/netns.
  return here.ip("link add " + name_here + " type veth peer name " + name_there + " netns " +
                     std::to_string(there.holder()),
                 error);
}

}  // namespace acctlock::test
