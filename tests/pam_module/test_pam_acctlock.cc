// SPDX-License-Identifier: BSD-3-Clause
// pam_acctlock.so through real libpam: service files in a temp dir loaded with
// pam_start_confdir, a real acctlockd on temp sockets with a real SQLite file,
// and real passwords checked by pam_unix for test users that exist only in
// this process's private mount namespace (tests/support/test_user.h).
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/pam_module/pam_transaction.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace acctlock::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// How long a login against a daemon that never answers may take before the
// module's waits count as unbounded (see the tests that use it).
constexpr auto kHangBound = 30s;

const TestUser kAlice{"acctlock-alice", 60401, 60401, "alice's right password"};
const TestUser kBob{"acctlock-bob", 60402, 60402, "bob's right password"};

// A conversation for tests that drive the PAM handle themselves: every
// prompt gets a wrong password.
int answer_wrong_password(int count, const pam_message**, pam_response** responses, void*) {
  auto* replies =
      static_cast<pam_response*>(calloc(static_cast<size_t>(count), sizeof(pam_response)));
  for (int i = 0; i < count; ++i) replies[i].resp = strdup("wrong");
  *responses = replies;
  return PAM_SUCCESS;
}

// The stack pam_acctlock(8) documents, with the module by absolute path and
// its settings from the daemon's own config file.
std::string documented_stack(const std::string& conf, const std::string& extra_arguments = {}) {
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + conf + extra_arguments;
  return "auth     required                 " + module + " preauth\n" +
         "auth     [success=1 default=bad]  pam_unix.so nodelay\n" +
         "auth     [default=die]            " + module + " authfail\n" +
         "auth     sufficient               " + module + " authsucc\n" +
         "account  required                 " + module + "\n" +
         "account  required                 pam_unix.so\n" +
         "password required                 pam_permit.so\n" +
         "password optional                 " + module + "\n";
}

class PamAcctlockTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { users_ready_ = add_test_users({kAlice, kBob}, &skip_reason_); }

  void SetUp() override {
    if (!users_ready_) GTEST_SKIP() << skip_reason_;
  }

  // Starts the daemon with `rules` and writes the documented stack.
  void start(const std::string& rules, const std::string& extra_arguments = {}) {
    daemon_ = std::make_unique<DaemonProcess>(dir_, rules);
    ASSERT_TRUE(daemon_->start());
    write_service("login", documented_stack(daemon_->config_path(), extra_arguments));
  }

  void write_service(const std::string& name, const std::string& text) {
    std::filesystem::create_directories(confdir_);
    write_file(confdir_ + "/" + name, text);
  }

  PamOutcome login(const TestUser& user, const std::string& password,
                   const std::string& service = "login",
                   std::vector<PamPhase> phases = {PamPhase::auth, PamPhase::account}) {
    return run_pam({confdir_, service, user.name, password, {}, std::move(phases)});
  }

  protocol::Answer check(const TestUser& user) {
    return daemon_->request(protocol::MessageType::check, user.name);
  }

  // Waits, with a deadline, for a timed lock to run out: the clock, not a
  // guess, says when it has.
  void wait_until_unlocked(const TestUser& user, std::chrono::seconds deadline) {
    const auto give_up = std::chrono::steady_clock::now() + deadline;
    while (check(user).verdict == protocol::Verdict::locked) {
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << user.name << " stayed locked";
      std::this_thread::sleep_for(100ms);
    }
  }

  static inline bool users_ready_ = false;
  static inline std::string skip_reason_;
  TempDir dir_;
  std::string confdir_ = dir_ / "pam.d";
  std::unique_ptr<DaemonProcess> daemon_;
};

// The test users are real for this process and its children, and absent
// from the host's files.
TEST_F(PamAcctlockTest, TestUsersExistHereButNotOnTheHost) {
  EXPECT_THAT(read_file("/etc/passwd"), HasSubstr(kAlice.name + ":x:"));
  const std::string host_passwd = read_host_file("/etc/passwd");
  const std::string host_shadow = read_host_file("/etc/shadow");
  ASSERT_THAT(host_passwd, HasSubstr("root:"));
  ASSERT_THAT(host_shadow, HasSubstr("root:"));
  EXPECT_THAT(host_passwd, ::testing::Not(HasSubstr(kAlice.name)));
  EXPECT_THAT(host_shadow, ::testing::Not(HasSubstr(kAlice.name)));
}

TEST_F(PamAcctlockTest, TheRightPasswordLogsIn) {
  start("deny = 3\n");
  const PamOutcome outcome = login(kAlice, kAlice.password);
  EXPECT_EQ(outcome.status, PAM_SUCCESS) << outcome.status_text;
  EXPECT_TRUE(outcome.messages.empty());
}

TEST_F(PamAcctlockTest, WrongPasswordsLockTheRightOneIsRefusedWithTheReasonUntilTheLockEnds) {
  // Long enough that three logins through pam_unix and the refused one fit
  // in the lock on a loaded machine; the wait below is bounded, not a sleep.
  start("deny = 3\nunlock_time = 6s\n");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const PamOutcome wrong = login(kAlice, "wrong");
    EXPECT_EQ(wrong.status, PAM_AUTH_ERR) << "attempt " << attempt;
    EXPECT_EQ(wrong.failed_phase, "auth");
  }
  const protocol::Answer after = check(kAlice);
  EXPECT_EQ(after.verdict, protocol::Verdict::locked);
  EXPECT_EQ(after.failures, 3u);

  const PamOutcome refused = login(kAlice, kAlice.password);
  EXPECT_EQ(refused.status, PAM_AUTH_ERR);
  EXPECT_THAT(refused.messages, Contains("The account is locked due to 3 failed logins."));
  EXPECT_THAT(refused.messages, Contains("(1 minute left to unlock)"));
  EXPECT_EQ(refused.messages.size(), 2u) << "preauth and authsucc both reached the lock; "
                                            "the user is told once";
  // Typing the right password during the lock did not lift it.
  EXPECT_EQ(check(kAlice).verdict, protocol::Verdict::locked);

  wait_until_unlocked(kAlice, 20s);
  const PamOutcome accepted = login(kAlice, kAlice.password);
  EXPECT_EQ(accepted.status, PAM_SUCCESS) << accepted.status_text;
}

// lockout_scope = unfamiliar (issue 11) through the whole stack: the module
// reports PAM_RHOST, the daemon judges each attempt by its source's scope.
TEST_F(PamAcctlockTest, AnAttackerElsewhereCannotLockTheUserOutOfTheirUsualAddress) {
  start("deny = 3\nunlock_time = 1h\nsource_deny = 0\nlockout_scope = unfamiliar\n");
  const auto from = [&](const std::string& password, const std::string& rhost) {
    return run_pam(
        {confdir_, "login", kAlice.name, password, {}, {PamPhase::auth, PamPhase::account}, rhost});
  };
  // Her login from home makes 198.51.100.20 familiar (the module inside this
  // root process reports the success).
  const PamOutcome home = from(kAlice.password, "198.51.100.20");
  ASSERT_EQ(home.status, PAM_SUCCESS) << home.status_text;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_EQ(from("wrong", "203.0.113.66").status, PAM_AUTH_ERR) << "attempt " << attempt;
  }
  // Elsewhere the right password is refused, with the lock's message...
  const PamOutcome elsewhere = from(kAlice.password, "192.0.2.33");
  EXPECT_EQ(elsewhere.status, PAM_AUTH_ERR);
  EXPECT_THAT(elsewhere.messages, Contains("The account is locked due to 3 failed logins."));
  EXPECT_EQ(from(kAlice.password, "203.0.113.66").status, PAM_AUTH_ERR);
  // ...from home she logs in, and her typos there count apart.
  const PamOutcome again = from(kAlice.password, "198.51.100.20");
  EXPECT_EQ(again.status, PAM_SUCCESS) << again.status_text;
  EXPECT_TRUE(again.messages.empty());
  EXPECT_EQ(from("wrong", "198.51.100.20").status, PAM_AUTH_ERR);
  EXPECT_EQ(from(kAlice.password, "198.51.100.20").status, PAM_SUCCESS);
  EXPECT_EQ(from(kAlice.password, "192.0.2.33").status, PAM_AUTH_ERR);
}

TEST_F(PamAcctlockTest, TheSecondLockoutLastsLockoutMultiplierTimesLonger) {
  start("deny = 2\nunlock_time = 2s\nlockout_multiplier = 3\n");
  // The lock starts somewhere within the second failing login, which takes
  // seconds on a loaded machine, so its length L is known from both sides:
  // locked_until - (end of that login) <= L <= locked_until - (its start),
  // give or take the one-second resolution of stored times.
  struct Bounds {
    std::int64_t at_most;
    std::int64_t at_least;
  };
  const auto lock_length = [&] {
    login(kAlice, "wrong");
    const std::int64_t before = std::time(nullptr);
    login(kAlice, "wrong");
    const std::int64_t after = std::time(nullptr);
    const protocol::Answer locked = check(kAlice);
    EXPECT_EQ(locked.verdict, protocol::Verdict::locked);
    return Bounds{locked.locked_until - before + 1, locked.locked_until - after - 1};
  };
  const Bounds first = lock_length();
  EXPECT_LE(first.at_least, 2);
  EXPECT_GE(first.at_most, 2);
  EXPECT_EQ(check(kAlice).level, 1u);
  wait_until_unlocked(kAlice, 10s);

  const Bounds second = lock_length();
  EXPECT_LE(second.at_least, 6);
  EXPECT_GE(second.at_most, 6);
  EXPECT_EQ(check(kAlice).level, 2u);
}

TEST_F(PamAcctlockTest, ASuccessInBetweenResetsTheCount) {
  start("deny = 3\nunlock_time = 1h\n");
  EXPECT_EQ(login(kAlice, "wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, "wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(check(kAlice).failures, 2u);
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).failures, 0u);
  EXPECT_EQ(login(kAlice, "wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, "wrong").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);
}

TEST_F(PamAcctlockTest, EachUserHasTheirOwnCount) {
  start("deny = 2\nunlock_time = 1h\n");
  login(kAlice, "wrong");
  login(kAlice, "wrong");
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kBob, kBob.password).status, PAM_SUCCESS);
}

TEST_F(PamAcctlockTest, ARestartOfTheDaemonKeepsTheLock) {
  start("deny = 2\nunlock_time = 1h\n");
  login(kAlice, "wrong");
  login(kAlice, "wrong");
  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  ASSERT_TRUE(daemon_->start());
  const PamOutcome refused = login(kAlice, kAlice.password);
  EXPECT_EQ(refused.status, PAM_AUTH_ERR);
  EXPECT_THAT(refused.messages, Contains(HasSubstr("locked due to 2 failed logins")));
}

TEST_F(PamAcctlockTest, ServiceRhostTtyAndRuserReachTheHistory) {
  start("deny = 3\n");
  write_service("sshd", documented_stack(daemon_->config_path()));
  // pam_set_item needs the handle, so this transaction is spelled out.
  const pam_conv conv{answer_wrong_password, nullptr};
  pam_handle_t* pamh = nullptr;
  ASSERT_EQ(pam_start_confdir("sshd", kAlice.name.c_str(), &conv, confdir_.c_str(), &pamh),
            PAM_SUCCESS);
  pam_set_item(pamh, PAM_RHOST, "192.0.2.7");
  pam_set_item(pamh, PAM_TTY, "ssh");
  pam_set_item(pamh, PAM_RUSER, "mallory");
  EXPECT_EQ(pam_authenticate(pamh, 0), PAM_AUTH_ERR);
  pam_end(pamh, PAM_AUTH_ERR);

  const CommandResult history = run_command(
      {ACCTLOCK_PATH, "--socket", daemon_->admin_socket(), "history", kAlice.name, "--json"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  const auto entries = nlohmann::json::parse(history.out).at("entries");
  ASSERT_EQ(entries.size(), 1u) << history.out;
  EXPECT_EQ(entries[0].at("event"), "failure");
  EXPECT_EQ(entries[0].at("service"), "sshd");
  EXPECT_EQ(entries[0].at("rhost"), "192.0.2.7");
  EXPECT_EQ(entries[0].at("tty"), "ssh");
  EXPECT_EQ(entries[0].at("ruser"), "mallory");
}

// What an unreachable daemon means is the admin's choice, and neither choice
// may hang the login: a socket that accepts and never answers is the worst
// case, bounded by timeout_ms.
class SilentSocket {
 public:
  explicit SilentSocket(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
  }
  ~SilentSocket() { close(fd_); }

 private:
  int fd_ = -1;
};

TEST_F(PamAcctlockTest, DaemonDownWithOnUnavailableAllowTheRightPasswordLogsIn) {
  const std::string conf = dir_ / "module.conf";
  write_file(conf, "event_socket = " + (dir_ / "nobody-listens.sock") + "\n");
  write_service("login", documented_stack(conf, " on_unavailable=allow timeout_ms=300"));
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);
  EXPECT_EQ(login(kAlice, "wrong").status, PAM_AUTH_ERR);

  SilentSocket silent(dir_ / "silent.sock");
  write_file(conf, "event_socket = " + (dir_ / "silent.sock") + "\n");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);
  // Three requests (preauth, authsucc, account), each bounded by 300 ms. A
  // hang check, not a benchmark: without the bound the silent socket would
  // hold the login forever; with it, the login's own work (pam_unix's hash)
  // is what takes the time, seconds on a loaded CI machine (5 s seen at a
  // load of 16), hence the margin.
  EXPECT_LT(std::chrono::steady_clock::now() - started, kHangBound);
}

TEST_F(PamAcctlockTest, DaemonDownWithOnUnavailableDenyEvenTheRightPasswordIsRefused) {
  const std::string conf = dir_ / "module.conf";
  write_file(conf, "event_socket = " + (dir_ / "nobody-listens.sock") + "\n");
  write_service("login", documented_stack(conf, " on_unavailable=deny timeout_ms=300"));
  const PamOutcome refused = login(kAlice, kAlice.password);
  EXPECT_EQ(refused.status, PAM_AUTHINFO_UNAVAIL);

  SilentSocket silent(dir_ / "silent.sock");
  write_file(conf, "event_socket = " + (dir_ / "silent.sock") + "\n");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NE(login(kAlice, kAlice.password).status, PAM_SUCCESS);
  EXPECT_LT(std::chrono::steady_clock::now() - started, kHangBound);
}

TEST_F(PamAcctlockTest, AnAdminLockRefusesTheRightPasswordAndAnUnlockLetsItIn) {
  start("deny = 3\n");
  const auto acctlock = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {ACCTLOCK_PATH, "--socket", daemon_->admin_socket()});
    return run_command(arguments);
  };
  ASSERT_EQ(acctlock({"lock", kAlice.name, "--reason", "incident 42"}).exit_code, 0);
  const PamOutcome refused = login(kAlice, kAlice.password);
  EXPECT_EQ(refused.status, PAM_AUTH_ERR);
  EXPECT_THAT(refused.messages, Contains("The account is locked by an administrator."));

  ASSERT_EQ(acctlock({"unlock", kAlice.name}).exit_code, 0);
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);

  login(kAlice, "wrong");
  login(kAlice, "wrong");
  login(kAlice, "wrong");
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_AUTH_ERR);
  ASSERT_EQ(acctlock({"--user", kAlice.name, "--reset"}).exit_code, 0);
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);
}

// An SSH key login runs no password check: only the account phase stands
// between a locked user and a shell.
TEST_F(PamAcctlockTest, TheAccountPhaseRefusesAnAdminLockButNotATimedLockByDefault) {
  start("deny = 2\nunlock_time = 1h\n");
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + daemon_->config_path();
  write_service("sshkey", "account required " + module + "\naccount required pam_unix.so\n");
  write_service("sshkey-strict", "account required " + module +
                                     " account_deny_locked\naccount required pam_unix.so\n");
  const auto key_login = [&](const std::string& service) {
    return login(kAlice, "", service, {PamPhase::account});
  };

  login(kAlice, "wrong");
  login(kAlice, "wrong");
  ASSERT_EQ(check(kAlice).lock, LockKind::failures);
  EXPECT_EQ(key_login("sshkey").status, PAM_SUCCESS);
  EXPECT_EQ(key_login("sshkey-strict").status, PAM_PERM_DENIED);

  ASSERT_EQ(run_command({ACCTLOCK_PATH, "--socket", daemon_->admin_socket(), "lock", kAlice.name})
                .exit_code,
            0);
  const PamOutcome refused = key_login("sshkey");
  EXPECT_EQ(refused.status, PAM_PERM_DENIED);
  EXPECT_THAT(refused.messages, Contains("The account is locked by an administrator."));
}

TEST_F(PamAcctlockTest, TheAccountPhaseClearsFailuresOnlyAfterThisModulesAuthPhase) {
  start("deny = 3\nunlock_time = 1h\n");
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + daemon_->config_path();
  // faillock's classic shape: no authsucc line; the account line completes
  // the login.
  write_service("classic", "auth required " + module + " preauth\n" +
                               "auth [success=1 default=bad] pam_unix.so nodelay\n" +
                               "auth [default=die] " + module + " authfail\n" +
                               "auth required pam_permit.so\n" + "account required " + module +
                               "\n");
  write_service("keyonly", "account required " + module + "\n");
  login(kAlice, "wrong", "classic");
  login(kAlice, "wrong", "classic");
  ASSERT_EQ(check(kAlice).failures, 2u);
  EXPECT_EQ(login(kAlice, "", "keyonly", {PamPhase::account}).status, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).failures, 2u);
  EXPECT_EQ(login(kAlice, kAlice.password, "classic").status, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).failures, 0u);
}

// pam_login goes on to the account phase only after a successful auth
// phase; a careless program might not. The failure must stay counted.
TEST_F(PamAcctlockTest, TheAccountPhaseAfterAFailedPasswordKeepsTheFailure) {
  start("deny = 3\nunlock_time = 1h\n");
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + daemon_->config_path();
  // auth fails but the stack's result is ignored, as a careless program would.
  write_service("careless", "auth required " + module + " preauth\n" +
                                "auth [success=1 default=bad] pam_unix.so nodelay\n" +
                                "auth [default=die] " + module + " authfail\n" +
                                "account required " + module + "\n");
  const pam_conv conv{answer_wrong_password, nullptr};
  pam_handle_t* pamh = nullptr;
  ASSERT_EQ(pam_start_confdir("careless", kAlice.name.c_str(), &conv, confdir_.c_str(), &pamh),
            PAM_SUCCESS);
  EXPECT_EQ(pam_authenticate(pamh, 0), PAM_AUTH_ERR);
  EXPECT_EQ(pam_acct_mgmt(pamh, 0), PAM_SUCCESS);
  pam_end(pamh, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).failures, 1u);
}

TEST_F(PamAcctlockTest, AChangedPasswordLiftsAFailureLockButNotAnAdminLock) {
  start("deny = 2\nunlock_time = 1h\n");
  login(kAlice, "wrong");
  login(kAlice, "wrong");
  ASSERT_EQ(login(kAlice, kAlice.password).status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, "", "login", {PamPhase::password}).status, PAM_SUCCESS);
  EXPECT_EQ(login(kAlice, kAlice.password).status, PAM_SUCCESS);

  ASSERT_EQ(run_command({ACCTLOCK_PATH, "--socket", daemon_->admin_socket(), "lock", kAlice.name})
                .exit_code,
            0);
  EXPECT_EQ(login(kAlice, "", "login", {PamPhase::password}).status, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).lock, LockKind::manual);
}

TEST_F(PamAcctlockTest, KeepLockOnPasswordChangeKeepsTheFailureLock) {
  start("deny = 2\nunlock_time = 1h\n", " keep_lock_on_password_change");
  login(kAlice, "wrong");
  login(kAlice, "wrong");
  EXPECT_EQ(login(kAlice, "", "login", {PamPhase::password}).status, PAM_SUCCESS);
  EXPECT_EQ(check(kAlice).lock, LockKind::failures);
}

TEST_F(PamAcctlockTest, SilentShowsNoMessageButStillRefuses) {
  start("deny = 1\nunlock_time = 1h\n", " silent");
  login(kAlice, "wrong");
  const PamOutcome refused = login(kAlice, kAlice.password);
  EXPECT_EQ(refused.status, PAM_AUTH_ERR);
  EXPECT_TRUE(refused.messages.empty());
}

TEST_F(PamAcctlockTest, UsersUnknownToTheSystemAreNotTracked) {
  start("deny = 1\n");
  EXPECT_NE(run_pam({confdir_, "login", "acctlock-no-such-user", "x", {}, {PamPhase::auth}}).status,
            PAM_SUCCESS);
  const CommandResult list =
      run_command({ACCTLOCK_PATH, "--socket", daemon_->admin_socket(), "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr("acctlock-no-such-user")));
}

// Sources (issue 11), through real libpam with PAM_RHOST set as sshd sets
// it: failures spread over two users and a name that does not exist block
// the address; then even the right password is refused from it, with the
// source's own message, while other addresses log in.
TEST_F(PamAcctlockTest, ABlockedAddressRefusesEveryUserWithItsOwnMessage) {
  start("deny = 5\nsource_deny = 3\nsource_unlock_time = 1h\n");
  const auto from = [&](const TestUser& user, const std::string& password,
                        const std::string& rhost) {
    return run_pam(
        {confdir_, "login", user.name, password, {}, {PamPhase::auth, PamPhase::account}, rhost});
  };
  EXPECT_EQ(from(kAlice, "wrong", "192.0.2.50").status, PAM_AUTH_ERR);
  EXPECT_EQ(from(kBob, "wrong", "192.0.2.50").status, PAM_AUTH_ERR);
  const TestUser ghost{"acctlock-no-such-user", 0, 0, ""};
  EXPECT_NE(from(ghost, "x", "192.0.2.50").status, PAM_SUCCESS);

  const PamOutcome refused = from(kAlice, kAlice.password, "192.0.2.50");
  EXPECT_EQ(refused.status, PAM_AUTH_ERR);
  EXPECT_THAT(refused.messages,
              Contains("Logins from this address are blocked due to 3 failed logins."));
  EXPECT_THAT(refused.messages, Contains(HasSubstr("left to unblock")));
  // A name that does not exist is refused the same way: the refusal does
  // not tell which names exist.
  EXPECT_THAT(from(ghost, "x", "192.0.2.50").messages,
              Contains("Logins from this address are blocked due to 3 failed logins."));
  // No account is locked, and the same user gets in from elsewhere.
  EXPECT_EQ(check(kAlice).verdict, protocol::Verdict::allowed);
  const PamOutcome elsewhere = from(kAlice, kAlice.password, "192.0.2.51");
  EXPECT_EQ(elsewhere.status, PAM_SUCCESS) << elsewhere.status_text;

  const CommandResult list =
      run_command({ACCTLOCK_PATH, "--socket", daemon_->admin_socket(), "list", "--json"});
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr(ghost.name)));
}

// A screen locker runs as the user it unlocks for. It may report that user's
// own failures, and no one else's.
TEST_F(PamAcctlockTest, AnUnprivilegedCallerReportsOnlyForItself) {
  start("deny = 3\nunlock_time = 1h\n");
  // Alice must be able to load the module and run the program wherever the
  // clone is (a root user's clone in /root, mode 0700, is out of her reach):
  // both are copied into the world-readable temp dir first.
  const std::filesystem::path bin = dir_ / "bin";
  std::filesystem::create_directories(bin);
  std::filesystem::permissions(bin, std::filesystem::perms(0755));
  const auto module = bin / "pam_acctlock.so";
  const auto program = bin / "pam_login";
  std::filesystem::copy_file(PAM_ACCTLOCK_PATH, module);
  std::filesystem::copy_file(PAM_LOGIN_PATH, program);
  std::string stack = documented_stack(daemon_->config_path());
  for (std::size_t at; (at = stack.find(PAM_ACCTLOCK_PATH)) != std::string::npos;) {
    stack.replace(at, std::string_view(PAM_ACCTLOCK_PATH).size(), module.string());
  }
  write_service("login", stack);
  const auto as_alice = [&](const TestUser& target, const std::string& password) {
    return run_command({"/usr/bin/setpriv", "--reuid=" + std::to_string(kAlice.uid),
                        "--regid=" + std::to_string(kAlice.gid), "--clear-groups", program.string(),
                        "--confdir", confdir_, "--service", "login", "--user", target.name,
                        "--password", password, "--phase", "auth"});
  };
  EXPECT_NE(as_alice(kAlice, "wrong").exit_code, 0);
  EXPECT_EQ(check(kAlice).failures, 1u);
  const CommandResult own = as_alice(kAlice, kAlice.password);
  EXPECT_EQ(own.exit_code, 0) << own.out << own.err;
  // Its own success is recorded but resets nothing (issue 9): a user with a
  // shell must not be able to clear their count or lock.
  EXPECT_EQ(check(kAlice).failures, 1u);

  EXPECT_NE(as_alice(kBob, "wrong").exit_code, 0);
  EXPECT_NE(as_alice(kBob, "wrong").exit_code, 0);
  EXPECT_NE(as_alice(kBob, "wrong").exit_code, 0);
  EXPECT_EQ(check(kBob).failures, 0u);
  EXPECT_EQ(check(kBob).verdict, protocol::Verdict::allowed);
  EXPECT_THAT(daemon_->log(), HasSubstr("refused"));
}

// pamtester reads the service from /etc/pam.d, as a real program does: here a
// temp dir mounted over it in this test's private mount namespace.
TEST_F(PamAcctlockTest, PamtesterWorksAsTheReadmeShows) {
#ifdef ACCTLOCK_SANITIZED_BUILD
  GTEST_SKIP() << "pamtester cannot load a module built with AddressSanitizer";
#endif
  if (access("/usr/bin/pamtester", X_OK) != 0) GTEST_SKIP() << "pamtester is not installed";
  start("deny = 2\nunlock_time = 1h\n");
  const std::string etc_pam_d = dir_ / "etc-pam.d";
  std::filesystem::create_directories(etc_pam_d);
  write_file(etc_pam_d + "/acctlock-test", documented_stack(daemon_->config_path()));
  ASSERT_EQ(mount(etc_pam_d.c_str(), "/etc/pam.d", nullptr, MS_BIND, nullptr), 0)
      << std::strerror(errno);
  const auto pamtester = [&](const std::string& password) {
    const std::string input = dir_ / "password";
    write_file(input, password + "\n");
    return run_command({"/bin/sh", "-c",
                        "exec /usr/bin/pamtester -v acctlock-test " + kAlice.name +
                            " authenticate acct_mgmt < " + input});
  };
  const CommandResult good = pamtester(kAlice.password);
  const CommandResult wrong1 = pamtester("wrong");
  const CommandResult wrong2 = pamtester("wrong");
  const CommandResult locked = pamtester(kAlice.password);
  umount2("/etc/pam.d", MNT_DETACH);

  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_THAT(good.out + good.err, HasSubstr("successfully authenticated"));
  EXPECT_NE(wrong1.exit_code, 0);
  EXPECT_NE(wrong2.exit_code, 0);
  EXPECT_NE(locked.exit_code, 0);
  EXPECT_THAT(locked.out + locked.err, HasSubstr("The account is locked due to 2 failed logins."));
}

// The module runs inside other people's programs: under valgrind, a whole
// lockout (connect, failures, the lock message, the account and password
// phases, pam_end closing the connection) must show no invalid access and no
// leak of the module's own.
TEST_F(PamAcctlockTest, RunsCleanUnderValgrind) {
#ifdef ACCTLOCK_SANITIZED_BUILD
  GTEST_SKIP() << "valgrind cannot run a sanitizer build";
#endif
  if (access("/usr/bin/valgrind", X_OK) != 0) GTEST_SKIP() << "valgrind is not installed";
  start("deny = 2\nunlock_time = 1h\n");
  const auto under_valgrind = [&](const std::string& password, const std::string& phase) {
    return run_command(
        {"/usr/bin/valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
         "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
         PAM_LOGIN_PATH, "--confdir", confdir_, "--service", "login", "--user", kAlice.name,
         "--password", password, "--phase", phase, "--phase", "account"},
        120s);
  };
  for (const auto& [password, phase, expected] :
       std::vector<std::tuple<std::string, std::string, int>>{
           {kAlice.password, "auth", PAM_SUCCESS},
           {"wrong", "auth", PAM_AUTH_ERR},
           {"wrong", "auth", PAM_AUTH_ERR},
           {kAlice.password, "auth", PAM_AUTH_ERR},
           {"", "password", PAM_SUCCESS}}) {
    const CommandResult result = under_valgrind(password, phase);
    EXPECT_EQ(result.exit_code, expected) << phase << " with \"" << password << "\"\n"
                                          << result.out << result.err;
    EXPECT_THAT(result.err, ::testing::Not(HasSubstr("pam_acctlock"))) << result.err;
  }
}

// Only the PAM entry points may be visible to the program that loads the
// module, and nothing in it may start threads or pull in Boost.
TEST(PamAcctlockModuleTest, ExportsOnlyThePamEntryPoints) {
  const CommandResult defined = run_command(
      {"/usr/bin/nm", "-D", "--defined-only", "--format=just-symbols", PAM_ACCTLOCK_PATH});
  ASSERT_EQ(defined.exit_code, 0) << defined.err;
  EXPECT_EQ(defined.out,
            "pam_sm_acct_mgmt\npam_sm_authenticate\npam_sm_chauthtok\npam_sm_setcred\n");

  const CommandResult undefined = run_command(
      {"/usr/bin/nm", "-D", "--undefined-only", "--format=just-symbols", PAM_ACCTLOCK_PATH});
  ASSERT_EQ(undefined.exit_code, 0) << undefined.err;
  EXPECT_THAT(undefined.out, HasSubstr("pam_syslog"));
  for (const char* forbidden : {"pthread_create", "boost", "signal", "sigaction", "fork", "printf",
                                "puts", "fwrite", "umask", "setuid", "chdir"}) {
    EXPECT_THAT(undefined.out, ::testing::Not(HasSubstr(std::string("\n") + forbidden)))
        << forbidden;
  }
}

}  // namespace
}  // namespace acctlock::test

namespace acctlock::test {
namespace {

// [service NAME] through real libpam: two service files, one tally. The
// module sends PAM_SERVICE; the daemon judges each request by that
// service's rule: sshd locks after 2 failures, login after 5.
TEST_F(PamAcctlockTest, AServiceSectionLocksSshdAfterTwoAndLoginAfterFive) {
  start("deny = 5\nunlock_time = 1h\n[service sshd]\ndeny = 2\n");
  write_service("sshd", documented_stack(daemon_->config_path()));

  EXPECT_EQ(login(kAlice, "wrong", "sshd").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, "wrong", "sshd").status, PAM_AUTH_ERR);
  // sshd's rule: 2 failures lock; the right password is refused there...
  const PamOutcome ssh = login(kAlice, kAlice.password, "sshd");
  EXPECT_EQ(ssh.status, PAM_AUTH_ERR) << ssh.status_text;
  EXPECT_THAT(ssh.messages, Contains(HasSubstr("locked"))) << "the module says why";
  // ... and the failures were one tally: login sees 2 of its 5.
  EXPECT_EQ(check(kAlice).failures, 2u);

  // Three more through login: its own deny of 5 locks, for both services.
  EXPECT_EQ(login(kBob, "wrong", "login").status, PAM_AUTH_ERR) << "another user, no effect";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(login(kAlice, "wrong", "login").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, kAlice.password, "login").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, kAlice.password, "sshd").status, PAM_AUTH_ERR);
  const protocol::Answer locked = check(kAlice);
  EXPECT_EQ(locked.verdict, protocol::Verdict::locked);
  EXPECT_EQ(locked.failures, 5u);
  EXPECT_EQ(locked.level, 2u) << "sshd's lockout, then login's";

  // Bob under login's rule: 4 failures and still let in.
  for (int i = 0; i < 3; ++i) login(kBob, "wrong", "login");
  EXPECT_EQ(login(kBob, kBob.password, "login").status, PAM_SUCCESS);
}

// Before the second failure through sshd, login's right password is let in
// and, as pam_faillock's authsucc, clears the tally.
TEST_F(PamAcctlockTest, ALenientServicesSuccessClearsAStrictServicesLock) {
  start("deny = 5\nunlock_time = 1h\n[service sshd]\ndeny = 2\n");
  write_service("sshd", documented_stack(daemon_->config_path()));
  login(kAlice, "wrong", "sshd");
  login(kAlice, "wrong", "sshd");
  ASSERT_EQ(login(kAlice, kAlice.password, "sshd").status, PAM_AUTH_ERR);
  EXPECT_EQ(login(kAlice, kAlice.password, "login").status, PAM_SUCCESS)
      << "2 failures are below login's deny of 5";
  EXPECT_EQ(login(kAlice, kAlice.password, "sshd").status, PAM_SUCCESS);
}

}  // namespace
}  // namespace acctlock::test
