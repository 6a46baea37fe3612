// SPDX-License-Identifier: BSD-3-Clause
// The acctlock command against a real acctlockd: what an admin types, what
// the PAM module then hears, and what everyone else is refused.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/exit_codes.h"
#include "common/protocol.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {
namespace {

using nlohmann::json;
using protocol::MessageType;
using protocol::Verdict;

// An existing system group stands in for admin_socket_group, so the host needs no
// new group; "nobody" is not a member of it.
constexpr const char* kAdminGroup = "adm";
// The account the tests lock: it exists on every Debian system.
constexpr const char* kTarget = "daemon";
constexpr const char* kNobody = "nobody";

enum class As { root, nobody, nobody_in_admin_group };

gid_t admin_gid() {
  const group* entry = getgrnam(kAdminGroup);
  return entry != nullptr ? entry->gr_gid : 0;
}

class AcctlockCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(getgrnam(kAdminGroup), nullptr) << "the test needs group " << kAdminGroup;
    ASSERT_TRUE(daemon.start());
  }

  CommandResult acctlock(std::vector<std::string> arguments, As as = As::root) {
    std::vector<std::string> argv;
    if (as != As::root) {
      argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534"};
      if (as == As::nobody) {
        argv.push_back("--clear-groups");
      } else {
        argv.push_back("--groups=" + std::to_string(admin_gid()));
      }
      argv.push_back("--");
    }
    argv.push_back(ACCTLOCK_PATH);
    argv.push_back("--config");
    argv.push_back(daemon.config_path());
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_command(argv);
  }

  json status_json(const std::string& user) {
    const auto result = acctlock({"status", user, "--json"});
    EXPECT_EQ(result.exit_code, cli::kExitOk) << result.err;
    return json::parse(result.out);
  }

  void fail_login(const std::string& user, int times) {
    for (int i = 0; i < times; ++i) daemon.request(MessageType::failure, user, "sshd", "192.0.2.7");
  }

  TempDir dir;
  DaemonProcess daemon{
      dir, std::string("deny = 3\nunlock_time = 10m\nhost_name = web-01\nadmin_socket_group = ") +
               kAdminGroup + "\n"};
};

TEST_F(AcctlockCommandTest, LockRefusesTheModuleAndUnlockAllowsIt) {
  const auto locked = acctlock({"lock", kTarget, "--reason", "left the company"});
  ASSERT_EQ(locked.exit_code, cli::kExitOk) << locked.err;

  auto answer = daemon.request(MessageType::check, kTarget);
  EXPECT_EQ(answer.verdict, Verdict::locked);
  EXPECT_EQ(answer.lock, LockKind::manual);
  EXPECT_EQ(answer.reason, "left the company");

  const auto unlocked = acctlock({"unlock", kTarget});
  ASSERT_EQ(unlocked.exit_code, cli::kExitOk) << unlocked.err;
  answer = daemon.request(MessageType::check, kTarget);
  EXPECT_EQ(answer.verdict, Verdict::allowed);
}

// lock --for: a manual lock with an end, seen by the module and in status;
// its expiry itself is the policy's (test_lockout_policy, timed manual lock).
TEST_F(AcctlockCommandTest, LockForSetsAnEndTheModuleAndStatusShow) {
  const auto before = std::chrono::system_clock::now();
  const auto locked = acctlock({"lock", kTarget, "--for", "2h", "--reason", "audit"});
  ASSERT_EQ(locked.exit_code, cli::kExitOk) << locked.err;
  EXPECT_EQ(locked.out, std::string("locked ") + kTarget + " for 2h\n");

  const auto answer = daemon.request(MessageType::check, kTarget);
  EXPECT_EQ(answer.verdict, Verdict::locked);
  EXPECT_EQ(answer.lock, LockKind::manual);
  const auto expected =
      std::chrono::duration_cast<std::chrono::seconds>(before.time_since_epoch()).count() + 7200;
  EXPECT_GE(answer.locked_until, expected);
  EXPECT_LE(answer.locked_until, expected + 60);
  EXPECT_FALSE(status_json(kTarget)["locked_until"].is_null());

  const auto history = acctlock({"history", kTarget, "--json"});
  ASSERT_EQ(history.exit_code, cli::kExitOk) << history.err;
  EXPECT_EQ(json::parse(history.out)["entries"][0]["detail"], "audit (for 2h)");

  for (const char* bad : {"0", "soon", "-5m"}) {
    const auto refused = acctlock({"lock", kTarget, "--for", bad});
    EXPECT_EQ(refused.exit_code, cli::kExitUsage) << bad;
    EXPECT_NE(refused.err.find("--for"), std::string::npos) << refused.err;
  }
  // Locking again without --for: until an admin unlocks.
  ASSERT_EQ(acctlock({"lock", kTarget}).exit_code, cli::kExitOk);
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).locked_until, 0);
}

TEST_F(AcctlockCommandTest, FaillockResetClearsFailuresAndLiftsTheLock) {
  fail_login(kTarget, 3);
  ASSERT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::locked);

  const auto reset = acctlock({"--user", kTarget, "--reset"});
  ASSERT_EQ(reset.exit_code, cli::kExitOk) << reset.err;

  const auto answer = daemon.request(MessageType::check, kTarget);
  EXPECT_EQ(answer.verdict, Verdict::allowed);
  EXPECT_EQ(answer.failures, 0u);
  EXPECT_EQ(status_json(kTarget)["failures"], 0);
}

// A second account that exists on every Debian system.
constexpr const char* kOther = "bin";

TEST_F(AcctlockCommandTest, FaillockResetWithoutUserResetsEveryone) {
  fail_login(kTarget, 3);
  fail_login(kOther, 1);
  ASSERT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::locked);

  const auto reset = acctlock({"--reset"});
  ASSERT_EQ(reset.exit_code, cli::kExitOk) << reset.err;
  EXPECT_NE(reset.out.find("2 user(s)"), std::string::npos) << reset.out;
  for (const char* user : {kTarget, kOther}) {
    const auto answer = daemon.request(MessageType::check, user);
    EXPECT_EQ(answer.verdict, Verdict::allowed) << user;
    EXPECT_EQ(answer.failures, 0u) << user;
  }
}

TEST_F(AcctlockCommandTest, UnlockAllLiftsEveryLockAndIsForAdminsOnly) {
  ASSERT_EQ(acctlock({"lock", kTarget}).exit_code, cli::kExitOk);
  fail_login(kOther, 3);
  ASSERT_EQ(daemon.request(MessageType::check, kOther).verdict, Verdict::locked);

  EXPECT_EQ(acctlock({"unlock", "--all"}, As::nobody).exit_code, cli::kExitPermissionDenied);
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::locked);

  const auto result = acctlock({"unlock", "--all", "--json"});
  ASSERT_EQ(result.exit_code, cli::kExitOk) << result.err;
  EXPECT_EQ(json::parse(result.out)["users"], json({kOther, kTarget}));
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::allowed);
  EXPECT_EQ(daemon.request(MessageType::check, kOther).verdict, Verdict::allowed);
}

TEST_F(AcctlockCommandTest, UnlockNeedsAUserOrAllButNotBoth) {
  EXPECT_EQ(acctlock({"unlock"}).exit_code, cli::kExitUsage);
  EXPECT_EQ(acctlock({"unlock", kTarget, "--all"}).exit_code, cli::kExitUsage);
}

// The header is compared with what the real faillock prints, so that a
// script parsing faillock's output reads ours.
TEST_F(AcctlockCommandTest, FaillockUserPrintsFaillocksTable) {
  // One record in pam_faillock's tally format (Linux-PAM's faillock.h:
  // source[52], reserved u16, status u16, time u64, host byte order), for
  // the real faillock to print.
  TempDir tallies;
  {
    struct {
      char source[52] = "192.0.2.7";
      std::uint16_t reserved = 0;
      std::uint16_t status = 0x1 | 0x2;  // TALLY_STATUS_VALID | TALLY_STATUS_RHOST
      std::uint64_t time = 1700000000;
    } record;
    static_assert(sizeof record == 64);
    std::ofstream(tallies.path() / kTarget, std::ios::binary)
        .write(reinterpret_cast<const char*>(&record), sizeof record);
  }
  const auto real =
      run_command({"/usr/sbin/faillock", "--dir", tallies.path().string(), "--user", kTarget});
  ASSERT_EQ(real.exit_code, 0) << real.err;
  std::vector<std::string> real_lines;
  {
    std::istringstream in(real.out);
    std::string line;
    while (std::getline(in, line)) real_lines.push_back(line);
  }
  ASSERT_EQ(real_lines.size(), 3u) << real.out;

  fail_login(kTarget, 2);
  const auto ours = acctlock({"--user", kTarget});
  ASSERT_EQ(ours.exit_code, cli::kExitOk) << ours.err;
  std::istringstream lines(ours.out);
  std::string line;
  std::vector<std::string> got;
  while (std::getline(lines, line)) got.push_back(line);
  ASSERT_EQ(got.size(), 4u) << ours.out;
  EXPECT_EQ(got[0], real_lines[0]);
  EXPECT_EQ(got[1], real_lines[1]);
  // The real row: "2023-11-14 22:13:20 RHOST 192.0.2.7 ... V" in local time.
  EXPECT_EQ(real_lines[2].size(), got[2].size()) << real_lines[2] << "\n" << got[2];
  EXPECT_EQ(real_lines[2].substr(19), got[2].substr(19));
  for (std::size_t i = 2; i < 4; ++i) {
    // "YYYY-MM-DD HH:MM:SS RHOST 192.0.2.7 ... V": faillock's columns.
    EXPECT_EQ(got[i].substr(19, 7), " RHOST ") << got[i];
    EXPECT_EQ(got[i].substr(26, 9), "192.0.2.7") << got[i];
    EXPECT_EQ(got[i].back(), 'V') << got[i];
    EXPECT_EQ(got[i].size(), 19u + 1 + 5 + 1 + 52 + 1 + 1) << got[i];
  }

  // --json still gives the rich form.
  const auto rich = acctlock({"--user", kTarget, "--json"});
  ASSERT_EQ(rich.exit_code, cli::kExitOk) << rich.err;
  EXPECT_EQ(json::parse(rich.out)["failures"], 2);
}

TEST_F(AcctlockCommandTest, RunAsFaillockPrintsEveryUsersTable) {
  TempDir links;
  const auto link = links.path() / "faillock";
  std::filesystem::create_symlink(ACCTLOCK_PATH, link);
  fail_login(kTarget, 1);
  fail_login(kOther, 1);
  const auto result = run_command({link.string(), "--config", daemon.config_path()});
  ASSERT_EQ(result.exit_code, cli::kExitOk) << result.err;
  EXPECT_NE(result.out.find(std::string(kTarget) + ":\nWhen"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find(std::string(kOther) + ":\nWhen"), std::string::npos) << result.out;
  // faillock's --dir is accepted.
  EXPECT_EQ(run_command({link.string(), "--config", daemon.config_path(), "--dir", "/nonexistent",
                         "--user", kTarget})
                .exit_code,
            cli::kExitOk);
}

TEST_F(AcctlockCommandTest, HistoryWithoutUserShowsEveryUserToAdminsOnly) {
  fail_login(kTarget, 1);
  fail_login(kOther, 1);
  daemon.request(MessageType::success, kOther);
  const auto result = acctlock({"history", "--failed", "--json"});
  ASSERT_EQ(result.exit_code, cli::kExitOk) << result.err;
  std::set<std::string> users;
  const json history = json::parse(result.out);
  for (const auto& entry : history["entries"]) {
    EXPECT_EQ(entry["event"], "failure");
    users.insert(entry["user"].get<std::string>());
  }
  EXPECT_EQ(users, (std::set<std::string>{kTarget, kOther}));

  const auto table = acctlock({"history"});
  ASSERT_EQ(table.exit_code, cli::kExitOk) << table.err;
  EXPECT_EQ(table.out.rfind("TIME", 0), 0u);
  EXPECT_NE(table.out.find("USER"), std::string::npos);

  EXPECT_EQ(acctlock({"history"}, As::nobody).exit_code, cli::kExitPermissionDenied);
}

// Writes `user`'s tally in pam_faillock's format (Linux-PAM's faillock.h:
// source[52], reserved u16, status u16, time u64, host byte order): one
// valid RHOST record per time.
void write_tally(const std::filesystem::path& dir, const std::string& user,
                 const std::vector<std::int64_t>& times) {
  std::ofstream out(dir / user, std::ios::binary);
  for (const std::int64_t time : times) {
    struct {
      char source[52] = "192.0.2.7";
      std::uint16_t reserved = 0;
      std::uint16_t status = 0x1 | 0x2;  // TALLY_STATUS_VALID | TALLY_STATUS_RHOST
      std::uint64_t time = 0;
    } record;
    static_assert(sizeof record == 64);
    record.time = static_cast<std::uint64_t>(time);
    out.write(reinterpret_cast<const char*>(&record), sizeof record);
  }
}

// fail_window = sliding (the default) end to end: imported tally records
// keep their times, the times survive a restart, and a failure 20 minutes
// after the first of them does not count it, as pam_faillock would not. The
// same records under fail_window = chained lock: that is the difference.
TEST_F(AcctlockCommandTest, ImportedFailureTimesSlideOutOfTheWindowAcrossARestart) {
  TempDir tallies;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  // deny = 3, fail_interval = 15m (the default): 20 and 10 minutes ago.
  write_tally(tallies.path(), kTarget, {now - 1200, now - 600});

  const auto imported = acctlock({"import-faillock", "--dir", tallies.path().string()});
  ASSERT_EQ(imported.exit_code, cli::kExitOk) << imported.err;
  EXPECT_EQ(status_json(kTarget)["failures"], 1) << "the 20-minute-old one no longer counts";

  const int status = daemon.stop();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(daemon.start());
  // Had the restart lost the times, the two failures would count as recent
  // as the newest, and this third one would lock.
  const auto sliding = daemon.request(MessageType::failure, kTarget, "sshd", "192.0.2.7");
  EXPECT_EQ(sliding.verdict, Verdict::allowed);
  EXPECT_EQ(sliding.failures, 2u);

  TempDir chained_dir;
  DaemonProcess chained(chained_dir, "deny = 3\nfail_window = chained\n");
  ASSERT_TRUE(chained.start());
  const auto chained_import = run_command({ACCTLOCK_PATH, "--config", chained.config_path(),
                                           "import-faillock", "--dir", tallies.path().string()});
  ASSERT_EQ(chained_import.exit_code, cli::kExitOk) << chained_import.err;
  const auto locked = chained.request(MessageType::failure, kTarget, "sshd", "192.0.2.7");
  EXPECT_EQ(locked.verdict, Verdict::locked) << "chained: 10 minutes apart, each";
  EXPECT_EQ(locked.failures, 3u);
}

// pam_faillock's own tallies, written by the real module through real
// libpam, brought over with their times, sources and validity.
TEST_F(AcctlockCommandTest, ImportFaillockBringsTheRealTalliesOver) {
  TempDir work;
  const std::string tallies = (work.path() / "tallies").string();
  const std::string confdir = (work.path() / "pam.d").string();
  std::filesystem::create_directories(tallies);
  std::filesystem::create_directories(confdir);
  const std::string faillock = "pam_faillock.so dir=" + tallies + " deny=3 unlock_time=600";
  std::ofstream(confdir + "/faillock-test") << "auth required " << faillock << " preauth\n"
                                            << "auth [success=1 default=bad] pam_deny.so\n"
                                            << "auth [default=die] " << faillock << " authfail\n"
                                            << "auth sufficient " << faillock << " authsucc\n";
  const auto fail_with_faillock = [&](const std::string& user) {
    const auto result =
        run_command({PAM_LOGIN_PATH, "--confdir", confdir, "--service", "faillock-test", "--user",
                     user, "--password", "wrong", "--phase", "auth"});
    EXPECT_NE(result.exit_code, 0) << result.out << result.err;
  };
  for (int i = 0; i < 3; ++i) fail_with_faillock(kTarget);
  fail_with_faillock(kOther);
  // The real faillock agrees that the target is locked: 3 valid records.
  const auto real = run_command({"/usr/sbin/faillock", "--dir", tallies, "--user", kTarget});
  ASSERT_EQ(std::count(real.out.begin(), real.out.end(), '\n'), 5) << real.out;

  const auto dry = acctlock({"import-faillock", "--dir", tallies, "--dry-run"});
  ASSERT_EQ(dry.exit_code, cli::kExitOk) << dry.err;
  EXPECT_NE(dry.out.find("Would import 4 record(s) (4 still counted) of 2 user(s)"),
            std::string::npos)
      << dry.out;
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).failures, 0u)
      << "a dry run changes nothing";

  const auto imported = acctlock({"import-faillock", "--dir", tallies});
  ASSERT_EQ(imported.exit_code, cli::kExitOk) << imported.err;
  EXPECT_NE(imported.out.find("Imported 4 record(s)"), std::string::npos) << imported.out;

  const auto target = daemon.request(MessageType::check, kTarget);
  EXPECT_EQ(target.verdict, Verdict::locked) << "faillock held it locked; so does acctlock";
  EXPECT_EQ(target.lock, LockKind::failures);
  EXPECT_EQ(daemon.request(MessageType::check, kOther).failures, 1u);

  const auto history = acctlock({"history", kTarget, "--json"});
  ASSERT_EQ(history.exit_code, cli::kExitOk) << history.err;
  const json entries = json::parse(history.out)["entries"];
  ASSERT_EQ(entries.size(), 3u) << entries.dump();
  for (const auto& entry : entries) {
    EXPECT_EQ(entry["service"], "faillock-test") << "faillock's source: the service";
    EXPECT_EQ(entry["detail"], "imported from pam_faillock");
  }
  EXPECT_EQ(entries[0]["event"], "locked");

  // pam_faillock's tallies are root's (mode 0600): another user cannot
  // even read them, and is told so per file.
  const auto as_nobody = acctlock({"import-faillock", "--dir", tallies}, As::nobody);
  EXPECT_EQ(as_nobody.exit_code, cli::kExitFailure);
  EXPECT_NE(as_nobody.err.find("cannot read"), std::string::npos) << as_nobody.err;
}

TEST_F(AcctlockCommandTest, ImportFaillockReportsABrokenTallyAndImportsTheRest) {
  TempDir tallies;
  std::ofstream(tallies.path() / kTarget, std::ios::binary) << "short";
  const auto result = acctlock({"import-faillock", "--dir", tallies.path().string()});
  EXPECT_EQ(result.exit_code, cli::kExitFailure);
  EXPECT_NE(result.err.find("is not a pam_faillock tally"), std::string::npos) << result.err;
}

// exempt_group is never locked; admin_group is treated like root, as in
// faillock.conf. Users and groups of every Debian system: daemon (group
// daemon), bin (group bin), sys (group sys).
class ExemptionTest : public ::testing::Test {
 protected:
  void start(const std::string& extra) {
    daemon = std::make_unique<DaemonProcess>(dir, "deny = 3\nunlock_time = 10m\n" + extra);
    ASSERT_TRUE(daemon->start());
  }
  Verdict after_failures(const std::string& user, int times) {
    for (int i = 0; i < times; ++i) daemon->request(MessageType::failure, user, "sshd");
    return daemon->request(MessageType::check, user).verdict;
  }
  TempDir dir;
  std::unique_ptr<DaemonProcess> daemon;
};

TEST_F(ExemptionTest, ExemptGroupIsNeverLockedAndAdminGroupIsLikeRoot) {
  start("exempt_group = daemon\nadmin_group = bin\n");
  EXPECT_EQ(after_failures("daemon", 5), Verdict::allowed);
  EXPECT_EQ(after_failures("bin", 5), Verdict::allowed);
  EXPECT_EQ(after_failures("sys", 3), Verdict::locked);
  // Counted all the same; fail_window = sliding keeps deny failure times, so
  // the count of a user it never locks stops at deny (docs/policy.md).
  EXPECT_EQ(daemon->request(MessageType::check, "daemon").failures, 3u)
      << "an exempt user's failures are still counted";
}

TEST_F(ExemptionTest, EvenDenyRootLocksAdminGroupButNotExemptGroup) {
  start("exempt_group = daemon\nadmin_group = bin\neven_deny_root\n");
  EXPECT_EQ(after_failures("daemon", 5), Verdict::allowed);
  EXPECT_EQ(after_failures("bin", 3), Verdict::locked);
}

TEST_F(ExemptionTest, CheckConfigRefusesAGroupThatDoesNotExist) {
  const auto config = dir.path() / "typo.conf";
  std::ofstream(config) << "exempt_group = no-such-group-here\n";
  const auto result = run_command({ACCTLOCKD_PATH, "--check-config", "--config", config.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("exempt_group: \"no-such-group-here\" is not a group on this system"),
            std::string::npos)
      << result.err;
}

TEST_F(ExemptionTest, CheckConfigNotesTheChangedMeaningOfAdminGroup) {
  const auto config = dir.path() / "old.conf";
  std::ofstream(config) << "admin_group = adm\n";
  const auto result = run_command({ACCTLOCKD_PATH, "--check-config", "--config", config.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("admin_socket_group = adm"), std::string::npos) << result.err;
}

TEST_F(AcctlockCommandTest, StatusJsonCarriesTheDocumentedFields) {
  fail_login(kTarget, 2);
  json status = status_json(kTarget);
  EXPECT_EQ(status["user"], kTarget);
  EXPECT_EQ(status["locked"], false);
  EXPECT_EQ(status["manual"], false);
  EXPECT_EQ(status["failures"], 2);
  EXPECT_TRUE(status["locked_until"].is_null());
  EXPECT_TRUE(status["reason"].is_null());
  EXPECT_EQ(status["lock"], "none");

  fail_login(kTarget, 1);
  status = status_json(kTarget);
  EXPECT_EQ(status["locked"], true);
  EXPECT_EQ(status["lock"], "failures");
  EXPECT_EQ(status["level"], 1);
  ASSERT_TRUE(status["locked_until"].is_string());
  // The daemon's own answer to the module states the same moment.
  const auto answer = daemon.request(MessageType::check, kTarget);
  std::tm parts{};
  ASSERT_NE(
      strptime(status["locked_until"].get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts),
      nullptr);
  EXPECT_EQ(static_cast<std::int64_t>(timegm(&parts)), answer.locked_until);

  ASSERT_EQ(acctlock({"lock", kTarget, "--reason", "audit"}).exit_code, cli::kExitOk);
  status = status_json(kTarget);
  EXPECT_EQ(status["manual"], true);
  EXPECT_EQ(status["lock"], "manual");
  EXPECT_EQ(status["reason"], "audit");
}

TEST_F(AcctlockCommandTest, ListAndHistoryJson) {
  fail_login(kTarget, 1);
  daemon.request(MessageType::success, kTarget, "login");
  ASSERT_EQ(acctlock({"lock", kNobody}).exit_code, cli::kExitOk);

  const auto all = acctlock({"list", "--json"});
  ASSERT_EQ(all.exit_code, cli::kExitOk) << all.err;
  const json listed = json::parse(all.out);
  std::vector<std::string> users;
  for (const auto& entry : listed["users"]) users.push_back(entry["user"]);
  // The success reset the counter, so only the locked user is left.
  EXPECT_EQ(users, std::vector<std::string>{kNobody});

  const auto history = acctlock({"history", kTarget, "--json"});
  ASSERT_EQ(history.exit_code, cli::kExitOk) << history.err;
  const json entries = json::parse(history.out)["entries"];
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0]["event"], "success");  // newest first
  EXPECT_EQ(entries[1]["event"], "failure");
  EXPECT_EQ(entries[1]["service"], "sshd");
  EXPECT_EQ(entries[1]["rhost"], "192.0.2.7");

  const auto failed = acctlock({"history", kTarget, "--failed", "--since", "1h ago", "--json"});
  ASSERT_EQ(failed.exit_code, cli::kExitOk) << failed.err;
  EXPECT_EQ(json::parse(failed.out)["entries"].size(), 1u);

  const auto future = acctlock({"history", kTarget, "--since", "2999-01-01", "--json"});
  ASSERT_EQ(future.exit_code, cli::kExitOk) << future.err;
  EXPECT_TRUE(json::parse(future.out)["entries"].empty());

  const auto stats = acctlock({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, cli::kExitOk) << stats.err;
  const json counts = json::parse(stats.out);
  EXPECT_EQ(counts["locked_now"], 1);
  EXPECT_EQ(counts["failures_last_hour"], 1);
  EXPECT_EQ(counts["top_sources"][0]["source"], "192.0.2.7");
  EXPECT_EQ(counts["top_sources"][0]["rhost"], "192.0.2.7");
  EXPECT_EQ(counts["top_sources_complete"], true);

  // failures_per_hour (acctlock(8)): 24 whole UTC hours, oldest first, the
  // last one the current hour; together they hold the day's failures.
  const json& buckets = counts["failures_per_hour"];
  ASSERT_EQ(buckets.size(), 24u) << buckets.dump();
  std::int64_t sum = 0;
  std::time_t previous = 0;
  for (const json& bucket : buckets) {
    std::tm parts{};
    const std::string start = bucket["start"];
    ASSERT_NE(strptime(start.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts), nullptr) << start;
    const std::time_t at = timegm(&parts);
    EXPECT_EQ(at % 3600, 0) << start;
    if (previous != 0) {
      EXPECT_EQ(at - previous, 3600) << start;
    }
    previous = at;
    sum += bucket["failures"].get<std::int64_t>();
  }
  const std::time_t now = std::time(nullptr);
  EXPECT_LE(previous, now);
  EXPECT_GT(previous + 3600, now);
  EXPECT_EQ(sum, counts["failures_last_day"].get<std::int64_t>());
  EXPECT_GE(sum, 1);
}

TEST_F(AcctlockCommandTest, NonAdminIsRefusedEveryChangeAndStateStaysAsItWas) {
  fail_login(kTarget, 3);
  const json before = status_json(kTarget);
  ASSERT_EQ(before["locked"], true);

  const std::vector<std::vector<std::string>> refused{{"lock", kTarget},
                                                      {"unlock", kTarget},
                                                      {"--user", kTarget, "--reset"},
                                                      {"lock", kNobody},
                                                      {"list"},
                                                      {"stats"},
                                                      {"status", kTarget},
                                                      {"history", kTarget}};
  for (const auto& arguments : refused) {
    const auto result = acctlock(arguments, As::nobody);
    EXPECT_EQ(result.exit_code, cli::kExitPermissionDenied) << arguments[0] << ": " << result.err;
    EXPECT_NE(result.err.find("permission denied"), std::string::npos) << result.err;
  }
  EXPECT_EQ(status_json(kTarget), before);
  EXPECT_EQ(status_json(kNobody)["locked"], false);
}

TEST_F(AcctlockCommandTest, NonAdminMayReadTheirOwnStatus) {
  const auto result = acctlock({"status", kNobody, "--json"}, As::nobody);
  ASSERT_EQ(result.exit_code, cli::kExitOk) << result.err;
  EXPECT_EQ(json::parse(result.out)["user"], kNobody);
}

TEST_F(AcctlockCommandTest, AdminGroupMemberMayLockAndIsRecordedInTheHistory) {
  const auto result = acctlock({"lock", kTarget}, As::nobody_in_admin_group);
  ASSERT_EQ(result.exit_code, cli::kExitOk) << result.err;
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::locked);

  const auto history = acctlock({"history", kTarget, "--json"});
  const json entry = json::parse(history.out)["entries"][0];
  EXPECT_EQ(entry["event"], "manual_lock");
  EXPECT_EQ(entry["admin_uid"], 65534);

  EXPECT_EQ(acctlock({"unlock", kTarget}, As::nobody_in_admin_group).exit_code, cli::kExitOk);
  EXPECT_EQ(daemon.request(MessageType::check, kTarget).verdict, Verdict::allowed);
}

TEST_F(AcctlockCommandTest, UnknownUserGivesNoSuchUser) {
  for (const char* command : {"status", "lock", "unlock", "history"}) {
    const auto result = acctlock({command, "no-such-user-acctlock"});
    EXPECT_EQ(result.exit_code, cli::kExitNoSuchUser) << command << ": " << result.err;
    EXPECT_NE(result.err.find("no such user"), std::string::npos) << result.err;
  }
}

// Issue 15: --json always says which host wrote each row (a SQLite file is
// this daemon's, so its host_name); the text keeps the table it always had
// while every row is this host's; --host filters history and stats' history
// figures; list refuses --host and says why.
TEST_F(AcctlockCommandTest, HistoryAndStatsTakeHostInTextAndJson) {
  fail_login(kTarget, 1);

  const auto json_all = acctlock({"history", kTarget, "--json"});
  ASSERT_EQ(json_all.exit_code, cli::kExitOk) << json_all.err;
  const json all = json::parse(json_all.out);
  ASSERT_EQ(all["entries"].size(), 1u);
  EXPECT_EQ(all["entries"][0]["host"], "web-01");
  EXPECT_EQ(all["this_host"], "web-01");
  EXPECT_EQ(all["shared_store"], false);
  EXPECT_EQ(all["host"], nullptr);

  const auto text = acctlock({"history", kTarget, "--host", "web-01"});
  ASSERT_EQ(text.exit_code, cli::kExitOk) << text.err;
  EXPECT_EQ(text.out.substr(0, text.out.find('\n')).find(" HOST "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("failure"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("web-01"), std::string::npos) << text.out;

  const auto other = acctlock({"history", kTarget, "--host", "web-02"});
  ASSERT_EQ(other.exit_code, cli::kExitOk) << other.err;
  EXPECT_EQ(other.out, "No matching events.\n");
  const auto other_json = acctlock({"history", "--host", "web-02", "--json"});
  ASSERT_EQ(other_json.exit_code, cli::kExitOk) << other_json.err;
  EXPECT_TRUE(json::parse(other_json.out)["entries"].empty());
  EXPECT_EQ(json::parse(other_json.out)["host"], "web-02");

  const auto stats_other = acctlock({"stats", "--host", "web-02", "--json"});
  ASSERT_EQ(stats_other.exit_code, cli::kExitOk) << stats_other.err;
  EXPECT_EQ(json::parse(stats_other.out)["failures_last_hour"], 0);
  EXPECT_TRUE(json::parse(stats_other.out)["top_sources"].empty()) << stats_other.out;
  EXPECT_EQ(json::parse(stats_other.out)["host"], "web-02");
  const auto stats_here = acctlock({"stats", "--host", "web-01", "--json"});
  ASSERT_EQ(stats_here.exit_code, cli::kExitOk) << stats_here.err;
  EXPECT_EQ(json::parse(stats_here.out)["failures_last_hour"], 1);
  ASSERT_EQ(json::parse(stats_here.out)["top_sources"].size(), 1u) << stats_here.out;
  EXPECT_EQ(json::parse(stats_here.out)["top_sources"][0]["source"], "192.0.2.7");
  EXPECT_EQ(json::parse(stats_here.out)["top_sources"][0]["failures"], 1);
  const auto stats_text = acctlock({"stats", "--host", "web-02"});
  ASSERT_EQ(stats_text.exit_code, cli::kExitOk) << stats_text.err;
  EXPECT_EQ(stats_text.out.rfind("Failures, lockouts and top lists: host web-02 only\n", 0), 0u)
      << stats_text.out;
  EXPECT_NE(stats_text.out.find("Failures, last hour:   0\n"), std::string::npos) << stats_text.out;
  EXPECT_NE(stats_text.out.find("Most failures in the last day, by source:\nnone\n"),
            std::string::npos)
      << stats_text.out;

  const auto list = acctlock({"list", "--host", "web-01"});
  EXPECT_EQ(list.exit_code, cli::kExitUsage) << list.err;
  EXPECT_NE(list.err.find("history --host NAME"), std::string::npos) << list.err;
  EXPECT_TRUE(list.out.empty()) << list.out;
}

TEST_F(AcctlockCommandTest, UsageErrorsGiveTheUsageCode) {
  const std::vector<std::vector<std::string>> bad{{"--bogus"},
                                                  {"status"},
                                                  {"history", kTarget, "--limit", "0"},
                                                  {"history", kTarget, "--since", "soonish"},
                                                  {"status", kTarget, "--user", kTarget},
                                                  {"history", "--host", ""},
                                                  {"stats", "--host"},
                                                  {"list", "--host", "web-01"},
                                                  {"frobnicate"}};
  for (const auto& arguments : bad) {
    const auto result = acctlock(arguments);
    EXPECT_EQ(result.exit_code, cli::kExitUsage) << arguments[0] << ": " << result.err;
    // One line on stderr, nothing on stdout.
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_TRUE(result.out.empty()) << result.out;
  }
}

TEST_F(AcctlockCommandTest, DaemonDownGivesUnreachable) {
  daemon.stop();
  const auto result = acctlock({"status", kTarget});
  EXPECT_EQ(result.exit_code, cli::kExitUnreachable) << result.err;
}

TEST_F(AcctlockCommandTest, ErrorsUnderJsonAreJsonOnStdout) {
  daemon.stop();
  const auto down = acctlock({"status", kTarget, "--json"});
  EXPECT_EQ(down.exit_code, cli::kExitUnreachable) << down.err;
  const json error = json::parse(down.out);
  EXPECT_EQ(error["exit_code"], cli::kExitUnreachable);
  EXPECT_FALSE(error["error"].get<std::string>().empty());
}

TEST_F(AcctlockCommandTest, HelpDocumentsCommandsAndExitCodes) {
  const auto result = run_command({ACCTLOCK_PATH, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* word :
       {"status", "lock", "unlock", "list", "history", "stats", "--user", "--reset", "--conf",
        "--socket", "--json", "Exit status", "permission denied", "unreachable"}) {
    EXPECT_NE(result.out.find(word), std::string::npos) << word;
  }
}

// acctlock doctor against the test's daemon: its sockets, database and
// version, and a pam.d directory the test writes (the PAM checks in detail:
// test_pam_stack_check; on pam-auth-update's output: debian tests).
TEST_F(AcctlockCommandTest, DoctorPassesAGoodSetupAndNamesWhatIsWrong) {
  const std::string pam_dir = dir / "pam.d";
  std::filesystem::create_directory(pam_dir);
  write_file(pam_dir + "/sshd",
             "auth required pam_acctlock.so preauth\n"
             "auth [success=1 default=ignore] pam_unix.so\n"
             "auth [default=die] pam_acctlock.so authfail\n"
             "auth optional pam_acctlock.so authsucc\n"
             "account required pam_acctlock.so\n"
             "password optional pam_acctlock.so\n");
  const auto good = acctlock({"doctor", "--pam-dir", pam_dir, "--json"});
  ASSERT_EQ(good.exit_code, cli::kExitOk) << good.out << good.err;
  const json report = json::parse(good.out);
  EXPECT_EQ(report["problems"], 0);
  bool daemon_seen = false;
  for (const auto& finding : report["findings"]) {
    if (finding["where"] == daemon.admin_socket() &&
        finding["text"] == std::string("acctlockd ") + ACCTLOCK_VERSION + " answers") {
      daemon_seen = true;
    }
  }
  EXPECT_TRUE(daemon_seen) << good.out;

  // A history readable by everyone, and authfail that runs on success.
  ASSERT_EQ(chmod(daemon.database().c_str(), 0644), 0);
  write_file(pam_dir + "/sshd",
             "auth required pam_acctlock.so preauth\n"
             "auth required pam_unix.so\n"
             "auth [default=die] pam_acctlock.so authfail\n");
  const auto bad = acctlock({"doctor", "--pam-dir", pam_dir});
  EXPECT_EQ(bad.exit_code, cli::kExitFailure);
  EXPECT_NE(bad.out.find("problem: " + daemon.database() + ": database: mode 0644"),
            std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("problem: " + pam_dir +
                         "/sshd:3: authfail also runs after a right "
                         "password"),
            std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("2 problem(s)"), std::string::npos) << bad.out;

  // No daemon: a problem, said as such.
  daemon.stop();
  const auto down = acctlock({"doctor", "--pam-dir", pam_dir});
  EXPECT_EQ(down.exit_code, cli::kExitFailure);
  EXPECT_NE(down.out.find("problem: " + daemon.admin_socket() + ": acctlockd: "), std::string::npos)
      << down.out;
}

// The transport, byte by byte: a bad request costs its sender an error
// answer, and nobody else anything.
class AdminSocketTest : public AcctlockCommandTest {
 protected:
  int connect_admin() {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, daemon.admin_socket().c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
  }

  static void send_text(int fd, const std::string& text) {
    ASSERT_EQ(send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
  }

  // One answer line, or an empty string at EOF.
  static std::string read_line(int fd) {
    std::string line;
    char byte;
    while (recv(fd, &byte, 1, 0) == 1) {
      if (byte == '\n') return line;
      line += byte;
    }
    return line;
  }
};

TEST_F(AdminSocketTest, MalformedRequestIsAnsweredAndTheConnectionGoesOn) {
  const int fd = connect_admin();
  send_text(fd, "this is not json\n");
  EXPECT_EQ(json::parse(read_line(fd))["result"], 5);
  send_text(fd, R"({"command": "status", "arguments": {"user": "daemon"}})"
                "\n");
  const json answer = json::parse(read_line(fd));
  EXPECT_EQ(answer["result"], 0);
  EXPECT_EQ(answer["arguments"]["user"], "daemon");
  close(fd);
}

TEST_F(AdminSocketTest, OversizedRequestClosesOnlyItsConnection) {
  const int bystander = connect_admin();
  const int flooder = connect_admin();
  send_text(flooder, std::string(admin::kMaxRequestSize + 100, 'x'));
  EXPECT_EQ(json::parse(read_line(flooder))["result"], 5);
  EXPECT_EQ(read_line(flooder), "");  // closed

  send_text(bystander, R"({"command": "list"})"
                       "\n");
  EXPECT_EQ(json::parse(read_line(bystander))["result"], 0);
  close(flooder);
  close(bystander);
}

// Sources (issue 11): source_deny failures from one address, spread over
// several accounts (none of them reaches deny), block the address for every
// account; `acctlock sources` shows it with the time left and `unblock` (or
// `unlock --source`) lifts it, for admins only.
TEST_F(AcctlockCommandTest, SourcesShowsABlockedAddressAndUnblockLiftsIt) {
  // The default source_deny is 10; deny is 3 here, so two failures each.
  for (const char* user : {"daemon", "bin", "sys", "sync", "nobody"}) {
    for (int i = 0; i < 2; ++i) daemon.request(MessageType::failure, user, "sshd", "192.0.2.99");
  }
  const auto refused = daemon.request(MessageType::check, "games", "sshd", "192.0.2.99");
  EXPECT_EQ(refused.verdict, Verdict::locked);
  EXPECT_EQ(refused.lock, LockKind::source);
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "192.0.2.98").verdict,
            Verdict::allowed);
  EXPECT_FALSE(status_json("daemon")["locked"].get<bool>()) << "no account is locked";

  const auto listed = acctlock({"sources", "--blocked", "--json"});
  ASSERT_EQ(listed.exit_code, cli::kExitOk) << listed.err;
  const json sources = json::parse(listed.out)["sources"];
  ASSERT_EQ(sources.size(), 1u) << listed.out;
  EXPECT_EQ(sources[0]["source"], "192.0.2.99");
  EXPECT_EQ(sources[0]["blocked"], true);
  EXPECT_EQ(sources[0]["lock"], "failures");
  EXPECT_EQ(sources[0]["failures"], 10);
  EXPECT_TRUE(sources[0]["blocked_until"].is_string());

  const auto table = acctlock({"sources"});
  ASSERT_EQ(table.exit_code, cli::kExitOk) << table.err;
  EXPECT_NE(table.out.find("192.0.2.99"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" left"), std::string::npos) << table.out;

  EXPECT_EQ(acctlock({"sources"}, As::nobody).exit_code, cli::kExitPermissionDenied);
  EXPECT_EQ(acctlock({"unblock", "192.0.2.99"}, As::nobody).exit_code, cli::kExitPermissionDenied);
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "192.0.2.99").verdict,
            Verdict::locked);
  EXPECT_EQ(acctlock({"unblock", "not an address"}).exit_code, cli::kExitUsage);

  const auto unblocked = acctlock({"unblock", "192.0.2.99", "--json"});
  ASSERT_EQ(unblocked.exit_code, cli::kExitOk) << unblocked.err;
  EXPECT_EQ(json::parse(unblocked.out)["blocked"], false) << unblocked.out;
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "192.0.2.99").verdict,
            Verdict::allowed);
  const auto none = acctlock({"sources", "--blocked"});
  EXPECT_NE(none.out.find("No source is blocked."), std::string::npos) << none.out;

  // The faillock-style form does the same.
  for (int i = 0; i < 10; ++i) {
    daemon.request(MessageType::failure, i % 2 ? "bin" : "sys", "sshd", "2001:db8:7::1");
  }
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "2001:db8:7::ffff").lock,
            LockKind::source);
  ASSERT_EQ(acctlock({"unlock", "--source", "2001:db8:7::5"}).exit_code, cli::kExitOk);
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "2001:db8:7::ffff").verdict,
            Verdict::allowed);
  const auto history = acctlock({"history", "--json"});
  EXPECT_NE(history.out.find("\"source_unlocked\""), std::string::npos) << history.out;
  EXPECT_NE(history.out.find("\"source_blocked\""), std::string::npos) << history.out;
}

// acctlock lock --source blocks a prefix for every account until
// `unlock --source` lifts it; `status --source` tells one address's state
// and the block covering it; admins only; bad input is a usage error.
TEST_F(AcctlockCommandTest, LockSourceBlocksAPrefixAndStatusAndUnlockSourceFollowIt) {
  const auto blocked =
      acctlock({"lock", "--source", "198.51.100.0/24", "--reason", "scanner seen", "--json"});
  ASSERT_EQ(blocked.exit_code, cli::kExitOk) << blocked.err;
  EXPECT_EQ(json::parse(blocked.out)["reason"], "scanner seen") << blocked.out;
  const auto refused = daemon.request(MessageType::check, "games", "sshd", "198.51.100.42");
  EXPECT_EQ(refused.verdict, Verdict::locked);
  EXPECT_EQ(refused.lock, LockKind::source);
  EXPECT_EQ(refused.reason, "198.51.100.0/24");
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "198.51.101.1").verdict,
            Verdict::allowed);

  const auto shown = acctlock({"status", "--source", "198.51.100.42"});
  ASSERT_EQ(shown.exit_code, cli::kExitOk) << shown.err;
  EXPECT_NE(shown.out.find("Blocked:        yes (manual) by the block of 198.51.100.0/24"),
            std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("Reason:         scanner seen"), std::string::npos) << shown.out;
  const auto table = acctlock({"sources", "--blocked"});
  EXPECT_NE(table.out.find("198.51.100.0/24"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("until unblocked"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("scanner seen"), std::string::npos) << table.out;
  const auto stats = acctlock({"stats"});
  EXPECT_NE(stats.out.find("Blocked sources:       1 (1 by an admin)"), std::string::npos)
      << stats.out;

  // Refusals: the console, bad input, non-admins; none blocks anything.
  const auto console = acctlock({"lock", "--source", "local"});
  EXPECT_EQ(console.exit_code, cli::kExitUsage);
  EXPECT_NE(console.err.find("the console, which is never blocked"), std::string::npos)
      << console.err;
  EXPECT_EQ(acctlock({"lock", "--source", "10.1.2.3/8"}).exit_code, cli::kExitUsage);
  EXPECT_EQ(acctlock({"lock", "--source", "10.0.0.1", "daemon"}).exit_code, cli::kExitUsage);
  EXPECT_EQ(acctlock({"lock"}).exit_code, cli::kExitUsage);
  EXPECT_EQ(acctlock({"lock", "--source", "10.0.0.1"}, As::nobody).exit_code,
            cli::kExitPermissionDenied);
  EXPECT_EQ(acctlock({"status", "--source", "10.0.0.1"}, As::nobody).exit_code,
            cli::kExitPermissionDenied);
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "10.0.0.1").verdict,
            Verdict::allowed);

  const auto unlocked = acctlock({"unlock", "--source", "198.51.100.0/24"});
  ASSERT_EQ(unlocked.exit_code, cli::kExitOk) << unlocked.err;
  EXPECT_EQ(unlocked.out, "unblocked 198.51.100.0/24\n");
  EXPECT_EQ(daemon.request(MessageType::check, "games", "sshd", "198.51.100.42").verdict,
            Verdict::allowed);
}

// An acctlockd before admin protocol 5 does not know sources nor
// unlock_source and answers "unsupported": the command says it is too old,
// not "unknown command". The old daemon is a socket that answers so.
TEST_F(AcctlockCommandTest, SourcesAndUnblockSayWhenTheDaemonIsTooOld) {
  const std::string socket_path = dir / "old-admin.sock";
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  std::vector<std::string> commands;
  std::thread old_daemon([&] {
    for (int i = 0; i < 4; ++i) {
      const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      timeval timeout{10, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      std::string line;
      char byte;
      while (recv(fd, &byte, 1, 0) == 1 && byte != '\n') line += byte;
      const std::string command = json::parse(line).value("command", "");
      commands.push_back(command);
      const std::string answer =
          json{{"result", 2}, {"text", "unknown command \"" + command + "\""}, {"arguments", {}}}
              .dump() +
          "\n";
      send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      close(fd);
    }
  });
  const std::string config = dir / "old.conf";
  write_file(config, "admin_socket = " + socket_path + "\n");
  const auto run = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {ACCTLOCK_PATH, "--config", config});
    return run_command(arguments);
  };
  const auto listed = run({"sources"});
  const auto unblocked = run({"unblock", "192.0.2.99"});
  // Admin protocol 6: an older daemon blocks nothing and says nothing.
  const auto blocked = run({"lock", "--source", "192.0.2.0/24", "--reason", "r"});
  const auto shown = run({"status", "--source", "192.0.2.1"});
  shutdown(listener, SHUT_RDWR);
  old_daemon.join();
  close(listener);

  EXPECT_EQ(commands, (std::vector<std::string>{"sources", "unlock_source", "lock_source",
                                                "source_status"}));
  EXPECT_EQ(blocked.exit_code, cli::kExitFailure);
  EXPECT_NE(blocked.err.find("this acctlockd is too old for lock_source (admin protocol 6"),
            std::string::npos)
      << blocked.err;
  EXPECT_EQ(shown.exit_code, cli::kExitFailure);
  EXPECT_NE(shown.err.find("this acctlockd is too old for source_status (admin protocol 6"),
            std::string::npos)
      << shown.err;
  EXPECT_EQ(listed.exit_code, cli::kExitFailure);
  EXPECT_NE(listed.err.find("this acctlockd is too old for sources (admin protocol 5"),
            std::string::npos)
      << listed.err;
  EXPECT_EQ(unblocked.exit_code, cli::kExitFailure);
  EXPECT_NE(unblocked.err.find("this acctlockd is too old for unlock_source (admin protocol 5"),
            std::string::npos)
      << unblocked.err;
}

}  // namespace
}  // namespace acctlock::test
