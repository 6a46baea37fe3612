// SPDX-License-Identifier: BSD-3-Clause
// acctlockd under systemd: the units as systemd-analyze sees them, socket
// activation as systemd-socket-activate performs it, readiness and watchdog
// notifications, and lock events read back from a real systemd-journald.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/options.h"
#include "daemon/journal/journal_event_log.h"
#include "tests/pam_module/pam_transaction.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace acctlock::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kUnitDir = ACCTLOCK_SOURCE_DIR "/systemd";

// Polls `condition` until it holds or `deadline` passes; the condition, not
// a guessed delay, decides when to go on.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds deadline) {
  const auto give_up = Clock::now() + deadline;
  while (!condition()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// "Key=value" lines of a unit file's section; repeated keys keep every value.
std::multimap<std::string, std::string> unit_section(const std::string& path,
                                                     const std::string& section) {
  std::multimap<std::string, std::string> keys;
  std::istringstream lines(read_file(path));
  std::string line;
  std::string current;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.front() == '[') {
      current = line.substr(1, line.find(']') - 1);
    } else if (current == section && line.find('=') != std::string::npos) {
      keys.emplace(line.substr(0, line.find('=')), line.substr(line.find('=') + 1));
    }
  }
  return keys;
}

std::string only(const std::multimap<std::string, std::string>& keys, const std::string& key) {
  EXPECT_EQ(keys.count(key), 1u) << key;
  const auto found = keys.find(key);
  return found == keys.end() ? std::string() : found->second;
}

// The units as a package installs them, with ExecStart pointing at the
// binary under test so that systemd-analyze can check it.
std::vector<std::string> installable_units(const TempDir& dir) {
  std::string service = read_file(ACCTLOCK_BINARY_DIR "/systemd/acctlockd.service");
  service =
      std::regex_replace(service, std::regex("\nExecStart=[^\n]*"), "\nExecStart=" ACCTLOCKD_PATH);
  write_file(dir / "acctlockd.service", service);
  for (const char* socket : {"acctlockd.socket", "acctlockd-admin.socket",
                             "acctlockd-metrics.socket"}) {
    write_file(dir / socket, read_file(kUnitDir + "/" + socket));
  }
  return {dir / "acctlockd.service", dir / "acctlockd.socket", dir / "acctlockd-admin.socket",
          dir / "acctlockd-metrics.socket"};
}

TEST(SystemdUnitsTest, SystemdAnalyzeVerifiesEveryUnitWithoutAWarning) {
  TempDir dir;
  std::vector<std::string> command{"/usr/bin/systemd-analyze", "verify", "--man=no"};
  for (const std::string& unit : installable_units(dir)) command.push_back(unit);
  const CommandResult result = run_command(command, 60s);
  EXPECT_EQ(result.exit_code, 0);
  // verify exits 0 after many warnings (an unknown key is "ignoring"), so
  // any output at all fails the test.
  EXPECT_THAT(result.out + result.err, IsEmpty());
}

TEST(SystemdUnitsTest, TheServiceIsHardenedAsSystemdsOwnDaemonsAre) {
  TempDir dir;
  const std::string service = installable_units(dir)[0];
  const CommandResult result =
      // --threshold counts tenths: 20 is an overall exposure of 2.0 ("OK"),
      // where systemd's own daemons sit.
      run_command({"/usr/bin/systemd-analyze", "security", "--offline=true", "--threshold=20",
                   "--no-pager", service},
                  60s);
  EXPECT_EQ(result.exit_code, 0) << "exposure above 2.0:\n" << result.out << result.err;

  const auto keys = unit_section(service, "Service");
  EXPECT_EQ(only(keys, "Type"), "notify");
  EXPECT_EQ(only(keys, "User"), "acctlock");
  EXPECT_EQ(only(keys, "StateDirectory"), "acctlock");
  EXPECT_EQ(only(keys, "Restart"), "on-failure");
  EXPECT_EQ(only(keys, "ProtectSystem"), "strict");
  EXPECT_EQ(only(keys, "RestrictAddressFamilies"), "AF_UNIX");
  EXPECT_EQ(only(keys, "CapabilityBoundingSet"), "");
  EXPECT_FALSE(only(keys, "WatchdogSec").empty());
  // Peer credentials decide every request: uids must reach the daemon as
  // they are.
  EXPECT_EQ(keys.count("PrivateUsers"), 0u);
}

TEST(SystemdUnitsTest, SocketUnitsNameTheirDescriptorsAtTheConfiguredPaths) {
  const Options defaults;
  const auto event = unit_section(kUnitDir + "/acctlockd.socket", "Socket");
  EXPECT_EQ(only(event, "ListenStream"), defaults.event_socket);
  EXPECT_EQ(only(event, "FileDescriptorName"), "event");
  EXPECT_EQ(only(event, "SocketMode"), "0666");
  EXPECT_EQ(only(event, "RemoveOnStop"), "yes");

  const auto admin = unit_section(kUnitDir + "/acctlockd-admin.socket", "Socket");
  EXPECT_EQ(only(admin, "ListenStream"), defaults.admin_socket);
  EXPECT_EQ(only(admin, "FileDescriptorName"), "admin");
  EXPECT_EQ(only(admin, "SocketMode"), "0600");
  EXPECT_EQ(only(admin, "RemoveOnStop"), "yes");
  EXPECT_EQ(only(admin, "Service"), "acctlockd.service");

  const auto service = unit_section(ACCTLOCK_BINARY_DIR "/systemd/acctlockd.service", "Service");
  EXPECT_EQ(only(service, "Sockets"), "acctlockd.socket acctlockd-admin.socket");
}

TEST(SystemdUnitsTest, TheCatalogExplainsEveryJournalMessage) {
  TempDir root;
  const std::string catalog_dir = root / "usr/lib/systemd/catalog";
  std::filesystem::create_directories(catalog_dir);
  std::filesystem::copy_file(kUnitDir + "/acctlock.catalog", catalog_dir + "/acctlock.catalog");
  const CommandResult update =
      run_command({"/usr/bin/journalctl", "--root=" + root.path().string(), "--update-catalog"});
  ASSERT_EQ(update.exit_code, 0) << update.err;
  EXPECT_THAT(update.err, ::testing::Not(HasSubstr("acctlock.catalog")));
  const CommandResult list = run_command(
      {"/usr/bin/journalctl", "--root=" + root.path().string(), "--list-catalog", "--no-pager"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  for (const JournalMessage& message : journal_messages()) {
    EXPECT_THAT(list.out, HasSubstr(std::string(message.message_id) + " acctlock: "))
        << to_string(message.event);
  }
}

// --- the daemon as systemd runs it ------------------------------------------

const TestUser kCarol{"acctlock-carol", 60411, 60411, "carol's right password"};

class SystemdDaemonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { users_ready_ = add_test_users({kCarol}, &skip_reason_); }

  // A service file for the documented stack, talking to `socket`.
  std::string write_stack(const std::string& socket) {
    const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + (dir_ / "module.conf");
    write_file(dir_ / "module.conf", "event_socket = " + socket + "\n");
    std::filesystem::create_directories(dir_ / "pam.d");
    write_file(dir_ / "pam.d/login", "auth required " + module + " preauth\n" +
                                         "auth [success=1 default=bad] pam_unix.so nodelay\n" +
                                         "auth [default=die] " + module + " authfail\n" +
                                         "auth sufficient " + module + " authsucc\n" +
                                         "account required " + module + "\n");
    return dir_ / "pam.d";
  }

  PamOutcome login(const std::string& password) {
    return run_pam({dir_ / "pam.d", "login", kCarol.name, password, {}, {PamPhase::auth}});
  }

  CommandResult acctlock(const std::string& admin_socket, std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {ACCTLOCK_PATH, "--socket", admin_socket});
    return run_command(arguments);
  }

  static inline bool users_ready_ = false;
  static inline std::string skip_reason_;
  TempDir dir_;
};

TEST_F(SystemdDaemonTest, ReadyOnlyWithTheDatabaseOpenAndStoppingOnShutdown) {
  DaemonProcess daemon(dir_);
  ASSERT_TRUE(daemon.start());
  EXPECT_TRUE(std::filesystem::exists(daemon.database()));
  daemon.signal(SIGTERM);
  EXPECT_TRUE(daemon.wait_for_notification("STOPPING=1", 10s));
  EXPECT_EQ(daemon.wait_exit(20s), 0);
}

TEST_F(SystemdDaemonTest, AnUnopenableDatabaseNeverReportsReady) {
  DaemonProcess daemon(dir_, "database = " + (dir_ / "no-such-dir/acctlock.db") + "\n");
  EXPECT_FALSE(daemon.start_quietly());
  EXPECT_THAT(daemon.log(), HasSubstr("cannot open the database"));
}

TEST_F(SystemdDaemonTest, PingsTheWatchdogWhenSystemdAsks) {
  DaemonProcess daemon(dir_);
  daemon.set_launch_extras({}, {"WATCHDOG_USEC=200000"});
  ASSERT_TRUE(daemon.start());
  EXPECT_TRUE(daemon.wait_for_notification("WATCHDOG=1", 10s));
  EXPECT_TRUE(daemon.wait_for_notification("WATCHDOG=1", 10s));
}

// Runs acctlockd under systemd-socket-activate, which binds the sockets that
// `listen` describes and execs the daemon, in the same process, on the first
// connection. Its output goes to `log_path`.
pid_t socket_activate(const std::vector<std::string>& listen, const std::string& config,
                      const std::string& log_path) {
  std::vector<std::string> words{"/usr/bin/systemd-socket-activate"};
  words.insert(words.end(), listen.begin(), listen.end());
  words.insert(words.end(), {ACCTLOCKD_PATH, "--config", config, "--log-target=stderr"});
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// systemd-socket-activate binds both sockets, names the descriptors as the
// socket units do, and starts the daemon on the first connection.
TEST_F(SystemdDaemonTest, SocketActivatedTheModuleAndTheCommandUseTheInheritedSockets) {
  if (!users_ready_) GTEST_SKIP() << skip_reason_;
  const std::string event_socket = dir_ / "activated-event.sock";
  const std::string admin_socket = dir_ / "activated-admin.sock";
  // The config names other paths: the daemon must serve what it was given.
  DaemonProcess paths(dir_);
  const std::string log_path = dir_ / "activated.log";
  const pid_t pid =
      socket_activate({"-l", event_socket, "-l", admin_socket, "--fdname=event:admin"},
                      paths.config_path(), log_path);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(admin_socket); }, 10s));

  write_stack(event_socket);
  EXPECT_EQ(login("wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(login("wrong").status, PAM_AUTH_ERR);
  const CommandResult status = acctlock(admin_socket, {"status", kCarol.name, "--json"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(nlohmann::json::parse(status.out).at("failures"), 2) << status.out;
  EXPECT_EQ(acctlock(admin_socket, {"lock", kCarol.name}).exit_code, 0);
  EXPECT_EQ(login(kCarol.password).status, PAM_AUTH_ERR);
  EXPECT_EQ(acctlock(admin_socket, {"unlock", kCarol.name}).exit_code, 0);
  EXPECT_EQ(login(kCarol.password).status, PAM_SUCCESS);

  kill(pid, SIGTERM);
  int exit_status = -1;
  ASSERT_EQ(waitpid(pid, &exit_status, 0), pid);
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) << read_file(log_path);
  const std::string log = read_file(log_path);
  EXPECT_THAT(log, HasSubstr("(from systemd)"));
  // It created neither of the paths from its config...
  EXPECT_FALSE(std::filesystem::exists(paths.event_socket())) << log;
  // ...and left systemd's sockets to systemd.
  EXPECT_TRUE(std::filesystem::exists(event_socket));
}

TEST_F(SystemdDaemonTest, AnUnnamedDescriptorIsMatchedByItsAddress) {
  DaemonProcess daemon(dir_);
  const std::string log_path = dir_ / "activated.log";
  // Only the admin socket, unnamed, at the configured admin path.
  const pid_t pid = socket_activate({"-l", daemon.admin_socket()}, daemon.config_path(), log_path);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(daemon.admin_socket()); }, 10s));
  const CommandResult list = acctlock(daemon.admin_socket(), {"list"});
  EXPECT_EQ(list.exit_code, 0) << list.err << read_file(log_path);
  // The event socket it was not given, it made itself.
  EXPECT_TRUE(eventually([&] { return std::filesystem::exists(daemon.event_socket()); }, 10s));
  EXPECT_EQ(daemon.request(protocol::MessageType::check, kCarol.name).verdict,
            protocol::Verdict::allowed);
  kill(pid, SIGTERM);
  int exit_status = -1;
  ASSERT_EQ(waitpid(pid, &exit_status, 0), pid);
  EXPECT_THAT(read_file(log_path),
              HasSubstr("admin socket " + daemon.admin_socket() + " (from systemd)"));
}

// --- a real systemd-journald in this process's own mount namespace ----------

class PrivateJournald {
 public:
  // Mounts tmpfs over /run/systemd and /run/log (in the namespace that
  // add_test_users made private) and starts journald there.
  bool start(std::string* why_not) {
    for (const char* dir : {"/run/systemd", "/run/log"}) {
      std::filesystem::create_directories(dir);
      if (mount("tmpfs", dir, "tmpfs", 0, "mode=0755") != 0) {
        *why_not = std::string("mounting tmpfs on ") + dir + ": " + std::strerror(errno);
        return false;
      }
    }
    pid_ = fork();
    if (pid_ == 0) {
      const int null_fd = open("/dev/null", O_RDWR);
      dup2(null_fd, STDIN_FILENO);
      execl("/lib/systemd/systemd-journald", "systemd-journald", nullptr);
      _exit(127);
    }
    if (!eventually([] { return std::filesystem::exists("/run/systemd/journal/socket"); }, 10s)) {
      *why_not = "systemd-journald did not create its socket";
      return false;
    }
    return true;
  }

  ~PrivateJournald() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    umount2("/run/log", MNT_DETACH);
    umount2("/run/systemd", MNT_DETACH);
  }

  // The records with ACCTLOCK_EVENT=`event`, as journalctl prints them.
  static std::vector<nlohmann::json> events(const std::string& event) {
    const CommandResult result = run_command({"/usr/bin/journalctl", "-D", "/run/log/journal", "-o",
                                              "json", "--no-pager", "ACCTLOCK_EVENT=" + event});
    std::vector<nlohmann::json> records;
    std::istringstream lines(result.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty()) records.push_back(nlohmann::json::parse(line));
    }
    return records;
  }

  static nlohmann::json wait_for(const std::string& event) {
    std::vector<nlohmann::json> found;
    eventually([&] { return !(found = events(event)).empty(); }, 20s);
    return found.empty() ? nlohmann::json() : found.back();
  }

 private:
  pid_t pid_ = -1;
};

std::string message_id_of(HistoryEvent event) {
  return std::string(journal_message_for(event)->message_id);
}

TEST_F(SystemdDaemonTest, LockEventsReachTheJournalWithTheirIdsAndFields) {
  if (!users_ready_) GTEST_SKIP() << skip_reason_;
  if (access("/lib/systemd/systemd-journald", X_OK) != 0) GTEST_SKIP() << "no systemd-journald";
  PrivateJournald journald;
  std::string why_not;
  ASSERT_TRUE(journald.start(&why_not)) << why_not;

  DaemonProcess daemon(dir_, "deny = 2\nunlock_time = 2s\n");
  daemon.set_launch_extras({"--log-target=journal"}, {});
  ASSERT_TRUE(daemon.start());
  write_stack(daemon.event_socket());
  const std::int64_t before = std::time(nullptr);
  EXPECT_EQ(login("wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(login("wrong").status, PAM_AUTH_ERR);

  const nlohmann::json locked = PrivateJournald::wait_for("locked");
  ASSERT_FALSE(locked.is_null()) << "no locked event in the journal";
  EXPECT_EQ(locked.at("MESSAGE_ID"), message_id_of(HistoryEvent::locked));
  EXPECT_EQ(locked.at("PRIORITY"), "4");
  EXPECT_EQ(locked.at("SYSLOG_IDENTIFIER"), "acctlockd");
  EXPECT_EQ(locked.at("ACCTLOCK_USER"), kCarol.name);
  EXPECT_EQ(locked.at("ACCTLOCK_SERVICE"), "login");
  EXPECT_EQ(locked.at("ACCTLOCK_FAILURES"), "2");
  EXPECT_EQ(locked.at("ACCTLOCK_LEVEL"), "1");
  EXPECT_THAT(locked.at("MESSAGE").get<std::string>(), HasSubstr("locked after 2 failed logins"));
  const std::string until = locked.at("ACCTLOCK_LOCKED_UNTIL");
  std::tm parsed{};
  ASSERT_NE(strptime(until.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parsed), nullptr) << until;
  const std::int64_t until_seconds = timegm(&parsed);
  EXPECT_GE(until_seconds, before + 2);
  EXPECT_LE(until_seconds, std::time(nullptr) + 2);

  // The failure that locks the account is the locked event itself.
  const auto failures = PrivateJournald::events("failure");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].at("MESSAGE_ID"), message_id_of(HistoryEvent::failure));
  // Debug: a flood of failures is rate-limited apart from the lock records.
  EXPECT_EQ(failures[0].at("PRIORITY"), "7");

  // Nobody tries again: the daemon's own timer announces the expiry.
  const nlohmann::json expired = PrivateJournald::wait_for("expired");
  ASSERT_FALSE(expired.is_null()) << "no expired event in the journal";
  EXPECT_EQ(expired.at("MESSAGE_ID"), message_id_of(HistoryEvent::expired));
  EXPECT_EQ(expired.at("ACCTLOCK_USER"), kCarol.name);

  ASSERT_EQ(
      acctlock(daemon.admin_socket(), {"lock", kCarol.name, "--reason", "ticket 4711"}).exit_code,
      0);
  const nlohmann::json manual = PrivateJournald::wait_for("manual_lock");
  ASSERT_FALSE(manual.is_null());
  EXPECT_EQ(manual.at("MESSAGE_ID"), message_id_of(HistoryEvent::manual_lock));
  EXPECT_EQ(manual.at("ACCTLOCK_ADMIN_UID"), "0");
  EXPECT_EQ(manual.at("ACCTLOCK_REASON"), "ticket 4711");

  ASSERT_EQ(acctlock(daemon.admin_socket(), {"unlock", kCarol.name}).exit_code, 0);
  const nlohmann::json unlocked = PrivateJournald::wait_for("unlocked");
  ASSERT_FALSE(unlocked.is_null());
  EXPECT_EQ(unlocked.at("MESSAGE_ID"), message_id_of(HistoryEvent::unlocked));
  EXPECT_EQ(unlocked.at("ACCTLOCK_ADMIN_UID"), "0");
  EXPECT_EQ(unlocked.at("PRIORITY"), "5");
  EXPECT_THAT(daemon.log(), HasSubstr("lock events to the journal"));

  // faillock's --reset that lifts a lock is announced as a lifted lock.
  ASSERT_EQ(acctlock(daemon.admin_socket(), {"lock", kCarol.name}).exit_code, 0);
  ASSERT_EQ(acctlock(daemon.admin_socket(), {"--user", kCarol.name, "--reset"}).exit_code, 0);
  EXPECT_TRUE(eventually([] { return PrivateJournald::events("unlocked").size() == 2; }, 20s));
}

TEST_F(SystemdDaemonTest, WithoutAJournalLockEventsAreReadableLinesOnStderr) {
  if (!users_ready_) GTEST_SKIP() << skip_reason_;
  DaemonProcess daemon(dir_, "deny = 2\nunlock_time = 1h\n");
  ASSERT_TRUE(daemon.start());
  write_stack(daemon.event_socket());
  login("wrong");
  login("wrong");
  ASSERT_TRUE(
      eventually([&] { return daemon.log().find("locked user=") != std::string::npos; }, 10s));
  EXPECT_THAT(daemon.log(), HasSubstr("locked user=" + kCarol.name + " service=login"));
  EXPECT_THAT(daemon.log(), HasSubstr("lock events to stderr"));
}

}  // namespace
}  // namespace acctlock::test
