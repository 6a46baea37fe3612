// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/sshd_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace acctlock::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSshd = "/usr/sbin/sshd";
constexpr const char* kSsh = "/usr/bin/ssh";
constexpr const char* kSshKeygen = "/usr/bin/ssh-keygen";

// Both listening sockets of the config below report, bound or not.
constexpr int kListenAddresses = 2;

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// An empty file in place of `path`, with its owner and mode, visible only in
// this mount namespace. The copy is unlinked once mounted (the mount holds
// its inode).
bool mount_empty_copy(const std::string& path, const std::string& copies, std::string* why_not) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return true;  // nothing to hide: sshd skips it too
  const std::string copy = copies + "/" + std::to_string(info.st_ino);
  const int fd = open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const bool written =
      fd >= 0 && fchown(fd, info.st_uid, info.st_gid) == 0 && fchmod(fd, info.st_mode & 07777) == 0;
  if (fd >= 0) close(fd);
  const bool mounted = written && mount(copy.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) == 0;
  if (!mounted) *why_not = errno_text("private copy of " + path);
  unlink(copy.c_str());
  return mounted;
}

}  // namespace

bool openssh_installed(std::string* why_not) {
  for (const char* program : {kSshd, kSsh, kSshKeygen}) {
    if (access(program, X_OK) != 0) {
      *why_not = std::string(program) +
                 " is not installed (openssh-server, openssh-client: scripts/install-deps)";
      return false;
    }
  }
  return true;
}

bool prepare_private_system_for_sshd(const std::string& pam_dir, std::string* why_not) {
  if (mount(pam_dir.c_str(), "/etc/pam.d", nullptr, MS_BIND, nullptr) != 0) {
    *why_not = errno_text("bind-mounting " + pam_dir + " over /etc/pam.d");
    return false;
  }
  const TempDir copies;
  for (const char* record : {"/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog"}) {
    if (!mount_empty_copy(record, copies.path().string(), why_not)) return false;
  }
  // /var/run/utmp is /run/utmp: the tmpfs hides it as well.
  if (mount("acctlock-test-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
    *why_not = errno_text("mounting a private tmpfs over /run");
    return false;
  }
  if (mkdir("/run/sshd", 0755) != 0) {
    *why_not = errno_text("mkdir /run/sshd");
    return false;
  }
  return true;
}

SshdServer::SshdServer(const TempDir& dir, const NetworkNamespace& where, int port,
                       std::string extra_config)
    : where_(where),
      port_(port),
      config_path_(dir / "sshd_config"),
      host_key_path_(dir / "ssh_host_ed25519_key"),
      log_path_(dir / "sshd.log") {
  const CommandResult keygen = run_command(
      {kSshKeygen, "-q", "-t", "ed25519", "-N", "", "-C", "acctlock-test", "-f", host_key_path_});
  EXPECT_EQ(keygen.exit_code, 0) << "ssh-keygen: " << keygen.err;
  const std::string port_text = std::to_string(port);
  write_file(config_path_,
             "# acctlock's end-to-end tests: nothing here comes from the host's sshd.\n"
             "Port " +
                 port_text +
                 "\n"
                 "ListenAddress 0.0.0.0\n"
                 "ListenAddress ::\n"
                 "HostKey " +
                 host_key_path_ +
                 "\n"
                 "PidFile none\n"
                 "UsePAM yes\n"
                 "PasswordAuthentication yes\n"
                 "KbdInteractiveAuthentication no\n"
                 "PubkeyAuthentication no\n"
                 "HostbasedAuthentication no\n"
                 "AuthorizedKeysFile none\n"
                 "PermitRootLogin no\n"
                 "PermitEmptyPasswords no\n"
                 // The client address as PAM_RHOST, never a name from reverse DNS.
                 "UseDNS no\n"
                 "LoginGraceTime 30\n"
                 "MaxStartups 100\n"
                 "PrintMotd no\n"
                 "PrintLastLog no\n"
                 "X11Forwarding no\n"
                 "AllowTcpForwarding no\n"
                 "AllowAgentForwarding no\n"
                 "PermitTTY no\n"
                 "LogLevel VERBOSE\n" +
                 extra_config + "\n");
}

SshdServer::~SshdServer() {
  if (pid_ > 0) stop();
}

bool SshdServer::start(const std::vector<std::string>& environment) {
  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int namespace_fd = open(where_.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || namespace_fd < 0) {
    ADD_FAILURE() << errno_text("opening " + log_path_ + " or " + where_.path());
    if (log_fd >= 0) close(log_fd);
    if (namespace_fd >= 0) close(namespace_fd);
    return false;
  }
  const std::string log_before = log();
  std::vector<std::string> words{kSshd, "-D", "-e", "-f", config_path_};
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copies = environment;

  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (setns(namespace_fd, CLONE_NEWNET) != 0) _exit(126);
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    for (auto& entry : env_copies) putenv(entry.data());
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  close(namespace_fd);
  if (pid_ < 0) {
    ADD_FAILURE() << errno_text("fork");
    return false;
  }

  // Ready when sshd has reported on every ListenAddress: "Server listening
  // on ..." or "Bind to port ... failed" (an address family the namespace
  // lacks), which the tests then notice as refused connections.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    const std::string text = log().substr(log_before.size());
    int reported = 0;
    for (const char* line : {"Server listening on ", "Bind to port "}) {
      for (auto at = text.find(line); at != std::string::npos; at = text.find(line, at + 1)) {
        ++reported;
      }
    }
    if (reported >= kListenAddresses) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "sshd exited during start-up (status " << status << "):\n" << log();
      return false;
    }
    poll(nullptr, 0, 20);
  }
  ADD_FAILURE() << "sshd did not report its listening sockets:\n" << log();
  return false;
}

int SshdServer::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = -1;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      ADD_FAILURE() << "sshd ignored SIGTERM; killing it";
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    poll(nullptr, 0, 10);
  }
  pid_ = -1;
  return status;
}

std::string SshdServer::log() const {
  return read_file(log_path_);
}

std::string SshdServer::known_hosts(const std::vector<std::string>& addresses) const {
  std::string key = read_file(host_key_path_ + ".pub");
  if (const auto comment = key.rfind(' '); comment != std::string::npos) key.resize(comment);
  std::string lines;
  for (const std::string& address : addresses) {
    lines += "[" + address + "]:" + std::to_string(port_) + " " + key + "\n";
  }
  return lines;
}

}  // namespace acctlock::test
