// SPDX-License-Identifier: BSD-3-Clause
// The acctlock Cockpit page in a real browser: a real cockpit-ws (Debian's
// package) on a private 127.0.0.1 port serves the plugin from a temp
// directory (XDG_DATA_DIRS, nothing installed into /usr/share or /etc), and
// headless Chromium, driven by page_test.mjs through puppeteer-core, loads it
// against a real acctlockd started by this test.
//
// cockpit-ws runs with --local-session=cockpit-bridge: it starts the bridge
// as its own user instead of logging in through PAM, which is Cockpit's
// supported way to serve one session without a login page (the 401 a plain
// --no-tls cockpit-ws answers is its login challenge). The bridge, and so the
// page's cockpit.spawn, runs as the user the test starts cockpit-ws as.
//
// Lockouts are made through real libpam (pam_start_confdir) with the real
// pam_acctlock.so and pam_unix, for test users that exist only in this
// process's mount namespace (tests/support/test_user.h); cockpit-ws, its
// bridge and acctlockd inherit it. The driver and this test hand over
// through files in a sync directory (page_test.mjs): each side waits on the
// other's file or on a page condition, never on a fixed time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/pam_module/pam_transaction.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace acctlock::test {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;
namespace fs = std::filesystem;

const std::string kCockpitWs = "/usr/lib/cockpit/cockpit-ws";
const std::string kDriverDir = ACCTLOCK_COCKPIT_DRIVER_DIR;
// Deadlines: generous for a loaded two-core machine; a passing run never
// waits them out.
constexpr auto kDriverDeadline = 240s;
constexpr auto kHandOverDeadline = 120s;

const TestUser kCarol{"acctlock-carol", 60411, 60411, "carol's right password"};
const TestUser kDave{"acctlock-dave", 60412, 60412, "dave's right password"};

// The stack pam_acctlock(8) documents, the module by absolute path and its
// settings from the test daemon's config file.
std::string documented_stack(const std::string& conf) {
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + conf;
  return "auth     required                 " + module + " preauth\n" +
         "auth     [success=1 default=bad]  pam_unix.so nodelay\n" +
         "auth     [default=die]            " + module + " authfail\n" +
         "auth     sufficient               " + module + " authsucc\n" +
         "account  required                 " + module + "\n" +
         "account  required                 pam_unix.so\n";
}

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = kHandOverDeadline) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return condition();
}

// A free port on 127.0.0.1, from the kernel. cockpit-ws binds it itself a
// moment later; another process taking it in between makes the start fail
// visibly (the readiness wait below), never pass wrongly.
std::uint16_t free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t size = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

// The HTTP status line of GET `target`, or "" if nothing answers.
std::string http_status(std::uint16_t port, const std::string& target) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request =
        "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[512];
      const ssize_t got = recv(fd, buffer, sizeof buffer, 0);
      if (got > 0) answer.assign(buffer, static_cast<std::size_t>(got));
    }
  }
  close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

class CockpitPageTest : public ::testing::Test {
 protected:
  // Before any thread: add_test_users unshares the mount namespace.
  static void SetUpTestSuite() { users_ready_ = add_test_users({kCarol, kDave}, &skip_reason_); }

  void SetUp() override {
    if (!users_ready_) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(fs::exists(kCockpitWs)) << "cockpit-ws is missing: run scripts/install-deps";
    ASSERT_TRUE(fs::exists(kDriverDir + "/node_modules/puppeteer-core"))
        << "the browser driver is missing: the cockpit_driver_install test runs npm ci";
    ASSERT_TRUE(daemon_.start());

    // The plugin as it would be installed, in a private data dir.
    const fs::path plugin = dir_.path() / "share/cockpit/acctlock";
    fs::create_directories(plugin);
    fs::copy(fs::path(ACCTLOCK_SOURCE_DIR) / "cockpit", plugin, fs::copy_options::recursive);
    // The page runs "acctlock" from PATH; this one talks to the test's daemon.
    // A copy of the command in the world-readable temp dir: the non-admin
    // test runs it as nobody, who cannot reach a build tree in /root (0700),
    // where administrators clone.
    fs::create_directories(dir_.path() / "bin");
    fs::copy_file(fs::path(ACCTLOCK_BINARY_DIR) / "cli/acctlock", dir_.path() / "bin/acctlock.bin");
    chmod((dir_ / "bin/acctlock.bin").c_str(), 0755);
    write_file(dir_ / "bin/acctlock", "#!/bin/sh\nexec " + (dir_ / "bin/acctlock.bin") +
                                          " --config " + daemon_.config_path() + " \"$@\"\n");
    chmod((dir_ / "bin/acctlock").c_str(), 0755);
    fs::create_directories(dir_.path() / "screenshots");
    fs::create_directories(sync_dir_);
    fs::create_directories(dir_.path() / "pam.d");
    write_file(dir_ / "pam.d/login", documented_stack(daemon_.config_path()));
  }

  PamOutcome login(const TestUser& user, const std::string& password) {
    return run_pam({dir_ / "pam.d", "login", user.name, password, {}, {PamPhase::auth}});
  }

  // Wrong passwords through PAM until pam_acctlock.so refuses `user`.
  void lock_out_through_pam(const TestUser& user) {
    EXPECT_EQ(login(user, "wrong").status, PAM_AUTH_ERR);
    const PamOutcome second = login(user, "wrong");
    EXPECT_NE(second.status, PAM_SUCCESS);
    // Now even the right password is refused: the lock is pam_acctlock's.
    const PamOutcome refused = login(user, user.password);
    ASSERT_NE(refused.status, PAM_SUCCESS) << user.name << " was not locked out";
    ASSERT_EQ(status_of(user.name).value("locked", false), true) << status_of(user.name).dump();
  }

  // The driver, running while the test acts: see page_test.mjs.
  std::future<CommandResult> start_driver(std::vector<std::string> arguments) {
    return std::async(std::launch::async, [this, arguments] { return run_driver(arguments); });
  }

  // Waits until the driver reports `name` (or exits, which fails the test
  // with its output); the test then acts and answers with done(name).
  bool reached(const std::string& name, std::future<CommandResult>& driver) {
    const bool there = eventually([&] {
      return fs::exists(sync_dir_ / name) || driver.wait_for(0s) == std::future_status::ready;
    });
    if (there && fs::exists(sync_dir_ / name)) return true;
    const CommandResult result = driver.get();
    ADD_FAILURE() << "the page never reached \"" << name << "\": " << result.out << result.err
                  << "\ncockpit-ws: " << read_file(dir_ / "cockpit-ws.log");
    return false;
  }
  void done(const std::string& name) { write_file((sync_dir_ / (name + "-done")).string(), ""); }

  void TearDown() override { stop_cockpit_ws(); }

  // Starts cockpit-ws with `user_prefix` (e.g. setpriv ...) in front, and
  // waits until it serves the plugin's manifest.
  void start_cockpit_ws(const std::vector<std::string>& user_prefix = {}) {
    port_ = free_loopback_port();
    std::vector<std::string> argv = user_prefix;
    argv.insert(argv.end(), {kCockpitWs, "--local-session=cockpit-bridge", "--address=127.0.0.1",
                             "--port=" + std::to_string(port_)});
    const std::string data_dirs = "XDG_DATA_DIRS=" + (dir_ / "share") + ":/usr/share";
    const std::string path = "PATH=" + (dir_ / "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin";
    const std::string log = dir_ / "cockpit-ws.log";
    ws_pid_ = fork();
    ASSERT_GE(ws_pid_, 0);
    if (ws_pid_ == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      setpgid(0, 0);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      std::vector<std::string> env = {data_dirs, path, "HOME=" + (dir_ / "home"), "LANG=C.UTF-8"};
      std::vector<char*> envp;
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      execve(args[0], args.data(), envp.data());
      _exit(127);
    }
    const std::string manifest = "/cockpit/@localhost/acctlock/manifest.json";
    ASSERT_TRUE(eventually([&] {
      return http_status(port_, manifest).find(" 200 ") != std::string::npos;
    })) << "cockpit-ws did not serve the plugin: "
        << read_file(log);
  }

  void stop_cockpit_ws() {
    if (ws_pid_ <= 0) return;
    kill(-ws_pid_, SIGTERM);  // its own process group: cockpit-ws and its bridge
    int status = 0;
    waitpid(ws_pid_, &status, 0);
    ws_pid_ = -1;
  }

  // Screenshots are test artefacts: copied to ACCTLOCK_COCKPIT_SCREENSHOTS
  // (docs/images to refresh the docs), else to the build tree.
  void keep_screenshots() {
    const char* chosen = std::getenv("ACCTLOCK_COCKPIT_SCREENSHOTS");
    const fs::path keep =
        chosen ? fs::path(chosen) : fs::path(ACCTLOCK_COCKPIT_DRIVER_DIR) / "screenshots";
    std::error_code error;
    fs::create_directories(keep, error);
    fs::copy(dir_.path() / "screenshots", keep,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing, error);
    EXPECT_FALSE(error) << "keeping the screenshots in " << keep << ": " << error.message();
  }

  std::string page_url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/cockpit/@localhost/acctlock/index.html";
  }

  // page_test.mjs STEP URL SYNC_DIR SHOT_DIR USERS...
  CommandResult run_driver(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv = {"/usr/bin/node",    kDriverDir + "/page_test.mjs",
                                     arguments.at(0),    page_url(),
                                     sync_dir_.string(), dir_ / "screenshots"};
    argv.insert(argv.end(), arguments.begin() + 1, arguments.end());
    return run_command(argv, kDriverDeadline,
                       {"CHROMIUM=/usr/bin/chromium", "HOME=" + (dir_ / "home")});
  }

  // `acctlock status USER --json` against the test's daemon.
  nlohmann::json status_of(const std::string& user) {
    const auto result = run_command({std::string(ACCTLOCK_BINARY_DIR) + "/cli/acctlock", "--config",
                                     daemon_.config_path(), "status", user, "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out, nullptr, false);
  }

  // `acctlock status --source SOURCE --json` against the test's daemon.
  nlohmann::json source_status_of(const std::string& source) {
    const auto result = run_command({std::string(ACCTLOCK_BINARY_DIR) + "/cli/acctlock", "--config",
                                     daemon_.config_path(), "status", "--source", source, "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out, nullptr, false);
  }

  static inline bool users_ready_ = false;
  static inline std::string skip_reason_;
  TempDir dir_;
  fs::path sync_dir_ = dir_.path() / "sync";
  // source_deny = 3: three failures from one address, over any accounts,
  // block it (the lockouts above come from no address: never counted).
  DaemonProcess daemon_{
      dir_, "deny = 2\nunlock_time = 10m\nsource_deny = 3\nhost_name = cockpit-web-01\n"};
  std::uint16_t port_ = 0;
  pid_t ws_pid_ = -1;
};

// Carol is locked out through PAM before the page loads, Dave while it is
// open (acctlock watch); the admin unlocks Carol with the page's button,
// cancelling once first.
TEST_F(CockpitPageTest, AnAdminSeesLockoutsMadeThroughPamAndUnlocksOneFromThePage) {
  lock_out_through_pam(kCarol);
  start_cockpit_ws();
  auto driver = start_driver({"admin", kCarol.name, kDave.name, "cockpit-web-01"});

  ASSERT_TRUE(reached("page-up", driver));
  lock_out_through_pam(kDave);
  done("page-up");

  ASSERT_TRUE(reached("cancelled", driver));
  EXPECT_EQ(status_of(kCarol.name).value("locked", false), true)
      << "Cancel unlocked: " << status_of(kCarol.name).dump();
  done("cancelled");

  const CommandResult result = driver.get();
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("unlocked through the page"), std::string::npos) << result.out;
  // The account's history showed the daemon's host_name in its Host column.
  EXPECT_NE(result.out.find("the history shows the host"), std::string::npos) << result.out;

  // The page's Unlock went through acctlock to the daemon, for Carol only.
  EXPECT_EQ(status_of(kCarol.name).value("locked", true), false) << status_of(kCarol.name).dump();
  EXPECT_EQ(status_of(kDave.name).value("locked", false), true) << status_of(kDave.name).dump();
  EXPECT_EQ(login(kCarol, kCarol.password).status, PAM_SUCCESS) << "Carol still cannot log in";
  for (const char* shot : {"cockpit-acctlock-light.png", "cockpit-acctlock-dark.png",
                           "cockpit-acctlock-confirm.png"}) {
    const fs::path file = dir_.path() / "screenshots" / shot;
    EXPECT_TRUE(fs::exists(file) && fs::file_size(file) > 1000) << shot;
  }
  keep_screenshots();
}

// Sources (issue 11): wrong passwords through PAM from one address, for
// two accounts and a name NSS does not know, block the address; the page
// lists it and its Unblock lifts it; its Block form blocks a prefix.
TEST_F(CockpitPageTest, ASourceBlockedThroughPamShowsAndUnblockLiftsIt) {
  const std::string attacker = "192.0.2.44";
  const auto from_attacker = [&](const std::string& user, const std::string& password) {
    return run_pam(
        {dir_ / "pam.d", "login", user, password, {}, {PamPhase::auth}, attacker});
  };
  EXPECT_EQ(from_attacker(kCarol.name, "wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(from_attacker(kDave.name, "wrong").status, PAM_AUTH_ERR);
  EXPECT_NE(from_attacker("acctlock-nobody-here", "wrong").status, PAM_SUCCESS);
  // Blocked: even Carol's right password is refused from there, though
  // her account is not locked.
  ASSERT_NE(from_attacker(kCarol.name, kCarol.password).status, PAM_SUCCESS);
  EXPECT_EQ(status_of(kCarol.name).value("locked", true), false) << status_of(kCarol.name).dump();
  ASSERT_EQ(source_status_of(attacker).value("blocked", false), true)
      << source_status_of(attacker).dump();

  start_cockpit_ws();
  const CommandResult result = run_driver({"sources", attacker});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("blocked a prefix through the page"), std::string::npos) << result.out;

  // The page's Unblock went through acctlock to the daemon.
  EXPECT_EQ(source_status_of(attacker).value("blocked", true), false)
      << source_status_of(attacker).dump();
  EXPECT_EQ(from_attacker(kCarol.name, kCarol.password).status, PAM_SUCCESS);
  // The page's Block did too: an address inside the prefix is refused.
  const nlohmann::json blocked = source_status_of("198.51.100.7");
  EXPECT_EQ(blocked.value("blocked_by", ""), "198.51.100.0/24") << blocked.dump();
  EXPECT_EQ(blocked.value("reason", ""), "scanner seen") << blocked.dump();
  EXPECT_NE(run_pam({dir_ / "pam.d", "login", kCarol.name, kCarol.password, {}, {PamPhase::auth},
                     "198.51.100.7"})
                .status,
            PAM_SUCCESS);
  keep_screenshots();
}

TEST_F(CockpitPageTest, ANonAdminIsToldSoAndSeesNoButtons) {
  daemon_.request(MessageType::failure, "daemon", "sshd");
  ASSERT_EQ(daemon_.request(MessageType::failure, "daemon", "sshd").verdict,
            protocol::Verdict::locked);
  // cockpit-ws, its bridge and so the page's acctlock run as nobody, whom
  // acctlockd's admin socket does not let in (no admin_socket_group).
  fs::create_directories(dir_.path() / "home");
  ASSERT_EQ(chown((dir_ / "home").c_str(), 65534, 65534), 0);
  chmod(daemon_.config_path().c_str(), 0644);
  start_cockpit_ws({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
  const auto result = run_driver({"non-admin"});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("non-admin sees no buttons"), std::string::npos) << result.out;
  // Nothing the page did as nobody changed the lock.
  EXPECT_EQ(status_of("daemon").value("locked", false), true) << status_of("daemon").dump();
  keep_screenshots();
}

// acctlockd down: the page says so and offers nothing; when it is back, the
// page recovers without a reload.
TEST_F(CockpitPageTest, APageOpenedWhileAcctlockdIsDownSaysSoAndRecovers) {
  daemon_.request(MessageType::failure, "daemon", "sshd");
  ASSERT_EQ(daemon_.request(MessageType::failure, "daemon", "sshd").verdict,
            protocol::Verdict::locked);
  daemon_.stop();
  start_cockpit_ws();
  auto driver = start_driver({"down", "daemon"});

  ASSERT_TRUE(reached("down-shown", driver));
  ASSERT_TRUE(daemon_.start());
  done("down-shown");

  const CommandResult result = driver.get();
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("recovered once acctlockd was back"), std::string::npos) << result.out;
  const fs::path shot = dir_.path() / "screenshots/cockpit-acctlock-down.png";
  EXPECT_TRUE(fs::exists(shot) && fs::file_size(shot) > 1000);
  keep_screenshots();
}

}  // namespace
}  // namespace acctlock::test
