// SPDX-License-Identifier: BSD-3-Clause
// `acctlock watch` against a real acctlockd: events stream as they are
// committed, a non-admin is refused, and a watcher that stops reading is
// dropped with a last "overflow" line instead of growing the daemon.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using protocol::MessageType;
using ::testing::HasSubstr;

// A child process whose stdout the test reads line by line.
class StreamingCommand {
 public:
  explicit StreamingCommand(std::vector<std::string> words) {
    int out[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    std::vector<char*> argv;
    for (auto& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
  }
  ~StreamingCommand() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    close(fd_);
  }

  // The next line within `timeout`, or "" if none came.
  std::string next_line(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return "";
      pollfd ready{fd_, POLLIN, 0};
      if (poll(&ready, 1, static_cast<int>(left.count())) <= 0) return "";
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
};

int connect_admin(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  timeval timeout{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon_.start()); }

  std::vector<std::string> acctlock(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {ACCTLOCK_PATH, "--socket", daemon_.admin_socket()});
    return arguments;
  }

  TempDir dir_;
  DaemonProcess daemon_{dir_, "deny = 2\nunlock_time = 10m\n"};
};

TEST_F(WatchTest, LockEventsStreamAsJsonLinesAsTheyAreCommitted) {
  StreamingCommand watch(acctlock({"watch", "--json"}));
  // The watcher starts receiving once its answer is written, which the test
  // cannot see: a manual lock repeated until the watcher reports it marks
  // the point from which every event reaches it.
  bool watching = false;
  for (int attempt = 0; attempt < 50 && !watching; ++attempt) {
    ASSERT_EQ(run_command(acctlock({"lock", "daemon"})).exit_code, 0);
    const std::string line = watch.next_line(200ms);
    watching = !line.empty() && json::parse(line)["event"] == "manual_lock";
  }
  ASSERT_TRUE(watching);
  ASSERT_EQ(run_command(acctlock({"unlock", "daemon"})).exit_code, 0);
  std::string line;
  while (!(line = watch.next_line()).empty() && json::parse(line)["event"] != "unlocked") {
  }
  ASSERT_FALSE(line.empty());
  // A success is not a lock event: not streamed without --successes.
  daemon_.request(MessageType::success, "daemon", "login");
  daemon_.request(MessageType::failure, "root", "sshd", "192.0.2.7");
  daemon_.request(MessageType::failure, "root", "sshd", "192.0.2.7");

  const json first = json::parse(watch.next_line());
  EXPECT_EQ(first["event"], "failure");
  EXPECT_EQ(first["user"], "root");
  EXPECT_EQ(first["service"], "sshd");
  EXPECT_EQ(first["rhost"], "192.0.2.7");
  const json second = json::parse(watch.next_line());
  EXPECT_EQ(second["event"], "locked");
  EXPECT_EQ(second["failures"], 2);
  EXPECT_TRUE(second["locked_until"].is_string());

  ASSERT_EQ(run_command(acctlock({"unlock", "root"})).exit_code, 0);
  const json third = json::parse(watch.next_line());
  EXPECT_EQ(third["event"], "unlocked");
  EXPECT_EQ(third["admin_uid"], 0);
}

TEST_F(WatchTest, NonAdminsAreRefused) {
  const CommandResult refused =
      run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   ACCTLOCK_PATH, "--socket", daemon_.admin_socket(), "watch"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;  // permission denied
  EXPECT_THAT(refused.err, HasSubstr("permission denied"));
}

TEST_F(WatchTest, AWatcherThatStopsReadingIsDroppedNotBuffered) {
  const int fd = connect_admin(daemon_.admin_socket());
  const std::string request = R"({"command":"watch","arguments":{"successes":true}})"
                              "\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // Read exactly the answer line, then stop reading.
  std::string answer;
  char byte;
  while (recv(fd, &byte, 1, 0) == 1 && byte != '\n') answer += byte;
  ASSERT_EQ(json::parse(answer)["result"], 0) << answer;

  // Far more events than the queue (1024) and the socket buffer hold.
  for (int i = 0; i < 6000; ++i) daemon_.request(MessageType::success, "daemon", "login");
  // Logins were answered all along; now read what the daemon kept for us.
  std::string stream;
  char chunk[65536];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    stream.append(chunk, static_cast<std::size_t>(n));
  }
  close(fd);
  ASSERT_FALSE(stream.empty());
  const auto last_start = stream.rfind('\n', stream.size() - 2);
  const json last =
      json::parse(stream.substr(last_start == std::string::npos ? 0 : last_start + 1));
  EXPECT_EQ(last["overflow"], true) << last;
  const auto lines = std::count(stream.begin(), stream.end(), '\n');
  EXPECT_LT(lines, 6000);
  EXPECT_THAT(daemon_.log(), HasSubstr("dropping the watcher"));
  // And the daemon goes on.
  EXPECT_EQ(daemon_.request(MessageType::check, "root").verdict, protocol::Verdict::allowed);
}

}  // namespace
}  // namespace acctlock::test
