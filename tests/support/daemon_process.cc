// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/event_id.h"

namespace acctlock::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// waitpid with a deadline; SIGCHLD is not ours to take in a test binary, so
// this checks in short slices.
int wait_with_deadline(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return -1;
    if (Clock::now() >= deadline) return -1;
    poll(nullptr, 0, 10);
  }
}

std::vector<char*> as_argv(std::vector<std::string>& words) {
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  return argv;
}

}  // namespace

DaemonProcess::DaemonProcess(const TempDir& dir, std::string extra_config)
    : dir_(dir.path().string()),
      config_path_(dir / "acctlock.conf"),
      event_socket_(dir / "event.sock"),
      admin_socket_(dir / "admin.sock"),
      database_(dir / "acctlock.db"),
      log_path_(dir / "acctlockd.log") {
  rewrite_config(extra_config);
}

DaemonProcess::~DaemonProcess() {
  if (notify_fd_ >= 0) close(notify_fd_);
  if (pid_ > 0) stop();
}

void DaemonProcess::rewrite_config(const std::string& extra_config) {
  write_file(config_path_, "event_socket = " + event_socket_ + "\nadmin_socket = " + admin_socket_ +
                               "\ndatabase = " + database_ + "\n" + extra_config + "\n");
}

bool DaemonProcess::start() {
  return launch(true);
}
bool DaemonProcess::start_quietly() {
  return launch(false);
}

bool DaemonProcess::launch(bool report_failure) {
  const std::string notify_path = dir_ + "/notify.sock";
  unlink(notify_path.c_str());
  if (notify_fd_ >= 0) close(notify_fd_);
  const int notify = notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, notify_path.c_str(), sizeof address.sun_path - 1);
  if (notify < 0 || bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "cannot bind notify socket " << notify_path;
    return false;
  }

  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    unsetenv("JOURNAL_STREAM");
    for (const std::string& entry : extra_environment_) putenv(strdup(entry.c_str()));
    std::vector<std::string> words{ACCTLOCKD_PATH, "--config", config_path_};
    words.insert(words.end(), extra_arguments_.begin(), extra_arguments_.end());
    auto argv = as_argv(words);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);

  const auto deadline = Clock::now() + std::chrono::seconds(20);
  bool ready = false;
  while (!ready && Clock::now() < deadline) {
    pollfd entry{notify, POLLIN, 0};
    if (poll(&entry, 1, std::min(remaining_ms(deadline), 50)) > 0) {
      char message[512] = {};
      const ssize_t n = recv(notify, message, sizeof message - 1, 0);
      if (n > 0 && std::strstr(message, "READY=1") != nullptr) ready = true;
      continue;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (report_failure) {
        ADD_FAILURE() << "acctlockd exited during start-up (status " << status << "):\n" << log();
      }
      return false;
    }
  }
  if (!ready && report_failure) ADD_FAILURE() << "acctlockd did not report READY=1:\n" << log();
  return ready;
}

void DaemonProcess::set_launch_extras(std::vector<std::string> arguments,
                                      std::vector<std::string> environment) {
  extra_arguments_ = std::move(arguments);
  extra_environment_ = std::move(environment);
}

bool DaemonProcess::wait_for_notification(const std::string& text,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (notify_fd_ >= 0 && Clock::now() < deadline) {
    pollfd entry{notify_fd_, POLLIN, 0};
    if (poll(&entry, 1, remaining_ms(deadline)) <= 0) continue;
    char message[512] = {};
    const ssize_t n = recv(notify_fd_, message, sizeof message - 1, 0);
    if (n > 0 && std::strstr(message, text.c_str()) != nullptr) return true;
  }
  return false;
}

void DaemonProcess::signal(int number) const {
  if (pid_ > 0) kill(pid_, number);
}

int DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  const int status = wait_with_deadline(pid_, Clock::now() + timeout);
  if (status != -1) pid_ = -1;
  return status;
}

int DaemonProcess::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = wait_with_deadline(pid_, Clock::now() + std::chrono::seconds(20));
  if (status == -1) {
    ADD_FAILURE() << "acctlockd ignored SIGTERM; killing it";
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return status;
}

void DaemonProcess::kill_hard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string DaemonProcess::log() const {
  return read_file(log_path_);
}

protocol::Answer DaemonProcess::request(protocol::MessageType type, const std::string& user,
                                        const std::string& service, const std::string& rhost) {
  EventClient client;
  protocol::Answer answer;
  const auto status =
      client.exchange(event_socket_, {type, false, new_event_id(), user, service, rhost, "pts/1", ""}, answer,
                      std::chrono::seconds(10));
  EXPECT_EQ(status, ClientStatus::ok) << describe(status);
  return answer;
}

CommandResult run_command(const std::vector<std::string>& argv_words,
                          std::chrono::milliseconds timeout,
                          const std::vector<std::string>& extra_env) {
  CommandResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return result;
  std::vector<std::string> words = argv_words;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    for (const auto& entry : extra_env) putenv(strdup(entry.c_str()));
    auto argv = as_argv(words);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_pipes = 2;
  while (open_pipes > 0 && Clock::now() < deadline) {
    if (poll(fds, 2, remaining_ms(deadline)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char chunk[4096];
      const ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(chunk, static_cast<std::size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (auto& entry : fds) {
    if (entry.fd >= 0) close(entry.fd);
  }
  int status = wait_with_deadline(pid, deadline);
  if (status == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    result.exit_code = -1;
    return result;
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace acctlock::test
