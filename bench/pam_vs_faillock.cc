// SPDX-License-Identifier: BSD-3-Clause
// pam_vs_faillock: whole PAM transactions (pam_start_confdir, pam_authenticate,
// pam_acct_mgmt, pam_end) through pam_acctlock.so and a real acctlockd, and
// through pam_faillock.so, in the same stack shape around the same password
// module, interleaved in one run so that the machine's noise falls on both.
//
//   pam_vs_faillock [--rounds 300] [--warmup 30] [--password-check unix|none]
//
// Each round runs three logins of the same user through both modules, each
// a path of its own:
//   failing     a wrong password (the failure count goes 0 -> 1);
//   resetting   then the right one, which clears that count;
//   succeeding  then the right one again, with nothing to clear (the usual
//               login).
// So both modules work on the unlocked path with the default deny = 3, and
// their state neither grows nor locks over the run. Which module goes first
// alternates from round to round. Every outcome is checked; a wrong one
// stops the run.
//
// The user exists only in this process's private mount namespace, so the
// bench needs root. --password-check unix (the default) checks its real
// password with pam_unix; none puts pam_deny / pam_permit in its place, to
// show the modules' own cost without the password hash's.
//
// The temp dir (database, sockets, tally files) follows TMPDIR. Its file
// system is printed: on tmpfs an fsync costs nothing and the comparison says
// little. bench/run-pam-vs-faillock builds and runs this.
#include <security/pam_appl.h>
#include <sys/statfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "tests/pam_module/pam_transaction.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace {

using acctlock::test::PamOutcome;
using acctlock::test::PamPhase;
using acctlock::test::PamTransaction;
using Clock = std::chrono::steady_clock;

const acctlock::test::TestUser kBenchUser{"acctlock-bench", 60451, 60451, "the bench's password"};
const char* const kWrongPassword = "not the bench's password";

struct Settings {
  int rounds = 300;
  int warmup = 30;
  bool unix_passwords = true;
};

bool parse(int argc, char** argv, Settings& settings) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--rounds") {
      settings.rounds = std::atoi(value.c_str());
    } else if (flag == "--warmup") {
      settings.warmup = std::atoi(value.c_str());
    } else if (flag == "--password-check" && (value == "unix" || value == "none")) {
      settings.unix_passwords = value == "unix";
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && settings.rounds > 0 && settings.warmup >= 0;
}

enum class Module { acctlock, faillock };
enum class Path { failing, resetting, succeeding };
constexpr Path kPaths[] = {Path::failing, Path::resetting, Path::succeeding};

const char* module_name(Module module) {
  return module == Module::acctlock ? "pam_acctlock" : "pam_faillock";
}
const char* path_name(Path path) {
  switch (path) {
    case Path::failing:
      return "failing";
    case Path::resetting:
      return "resetting";
    case Path::succeeding:
      return "succeeding";
  }
  return "?";
}

// The password line: pam_unix without its failure delay, or, with no real
// check, a module that gives the path's answer at once.
std::string password_line(const Settings& settings, Path path) {
  if (settings.unix_passwords) return "pam_unix.so nodelay";
  return path == Path::failing ? "pam_deny.so" : "pam_permit.so";
}

// The stack pam_acctlock(8) documents, and pam_faillock(8)'s, line for line.
// Both read their own config file on every line, as they do in /etc/pam.d.
std::string acctlock_stack(const std::string& password, const std::string& conf) {
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + conf;
  return "auth    required                 " + module + " preauth\n" +
         "auth    [success=1 default=bad]  " + password + "\n" +
         "auth    [default=die]            " + module + " authfail\n" +
         "auth    sufficient               " + module + " authsucc\n" +
         "account required                 " + module + "\n";
}

std::string faillock_stack(const std::string& password, const std::string& conf) {
  const std::string module = "pam_faillock.so conf=" + conf;
  return "auth    required                 " + module + " preauth\n" +
         "auth    [success=1 default=bad]  " + password + "\n" +
         "auth    [default=die]            " + module + " authfail\n" +
         "auth    sufficient               " + module + " authsucc\n" +
         "account required                 " + module + "\n";
}

// One service for the wrong password and one for the right one: they differ
// only when --password-check none decides by the service.
std::string service_name(Module module, Path path) {
  return std::string(module_name(module)) + (path == Path::failing ? "-failing" : "-succeeding");
}

const char* file_system_name(const std::string& path) {
  struct statfs info {};
  if (statfs(path.c_str(), &info) != 0) return "unknown";
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs (fsync is free here: durability costs nothing)";
    case 0x794C7630:
      return "overlayfs";
    default:
      return "other";
  }
}

struct Timings {
  std::vector<double> milliseconds;

  double percentile(double p) const {
    std::vector<double> sorted = milliseconds;
    std::sort(sorted.begin(), sorted.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[index];
  }
  double mean() const {
    return std::accumulate(milliseconds.begin(), milliseconds.end(), 0.0) /
           static_cast<double>(milliseconds.size());
  }
};

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  if (!parse(argc, argv, settings)) {
    std::fprintf(stderr,
                 "usage: pam_vs_faillock [--rounds N] [--warmup N] [--password-check unix|none]\n");
    return 2;
  }
  // Both modules look the user up (and ignore unknown ones), so the user is
  // needed even when no password is checked.
  std::string why_not;
  if (!acctlock::test::add_test_users({kBenchUser}, &why_not)) {
    std::fprintf(stderr, "pam_vs_faillock: cannot add the test user: %s\n", why_not.c_str());
    return 1;
  }

  const acctlock::test::TempDir dir;
  acctlock::test::DaemonProcess daemon(dir);
  if (!daemon.start()) {
    std::fprintf(stderr, "pam_vs_faillock: acctlockd did not start:\n%s", daemon.log().c_str());
    return 1;
  }
  const std::string tally_dir = dir / "faillock";
  const std::string faillock_conf = dir / "faillock.conf";
  std::filesystem::create_directory(tally_dir);
  acctlock::test::write_file(faillock_conf, "dir = " + tally_dir + "\nnodelay\n");
  const std::string confdir = dir / "pam.d";
  std::filesystem::create_directory(confdir);
  for (const Path path : {Path::failing, Path::succeeding}) {
    const std::string password = password_line(settings, path);
    acctlock::test::write_file(confdir + "/" + service_name(Module::acctlock, path),
                               acctlock_stack(password, daemon.config_path()));
    acctlock::test::write_file(confdir + "/" + service_name(Module::faillock, path),
                               faillock_stack(password, faillock_conf));
  }

  Timings timings[2][3];  // [module][path]
  const auto run_one = [&](Module module, Path path, bool keep) {
    const bool failing = path == Path::failing;
    const PamTransaction transaction{confdir,
                                     service_name(module, path),
                                     kBenchUser.name,
                                     failing ? kWrongPassword : kBenchUser.password,
                                     {},
                                     {PamPhase::auth, PamPhase::account}};
    const auto start = Clock::now();
    const PamOutcome outcome = acctlock::test::run_pam(transaction);
    const std::chrono::duration<double, std::milli> elapsed = Clock::now() - start;
    const int expected = failing ? PAM_AUTH_ERR : PAM_SUCCESS;
    if (outcome.status != expected) {
      std::fprintf(stderr, "pam_vs_faillock: %s, %s login: %s in %s, not %s\n", module_name(module),
                   path_name(path), outcome.status_text.c_str(), outcome.failed_phase.c_str(),
                   failing ? "an auth failure" : "a success");
      std::exit(1);
    }
    if (keep) {
      timings[static_cast<int>(module)][static_cast<int>(path)].milliseconds.push_back(
          elapsed.count());
    }
  };
  for (int round = 0; round < settings.warmup + settings.rounds; ++round) {
    const bool keep = round >= settings.warmup;
    const Module first = round % 2 == 0 ? Module::acctlock : Module::faillock;
    const Module second = round % 2 == 0 ? Module::faillock : Module::acctlock;
    for (const Path path : kPaths) {
      run_one(first, path, keep);
      run_one(second, path, keep);
    }
  }
  daemon.stop();

  std::printf("pam_vs_faillock: %d rounds after %d warm-up rounds, auth + account phases\n",
              settings.rounds, settings.warmup);
  std::printf("password module: %s\n", settings.unix_passwords ? "pam_unix nodelay, a yescrypt hash"
                                                               : "none (pam_deny / pam_permit)");
  std::printf("temp dir: %s on %s\n", dir.path().c_str(), file_system_name(dir.path().string()));
  std::printf(
      "pam_acctlock: acctlockd answers each failure after its SQLite commit (synchronous=FULL)\n"
      "pam_faillock: tally file written with write(), never fsync()ed\n");
  // Other work on the machine shows up in acctlock's figures more than in
  // faillock's: each login waits for another process (acctlockd) to be
  // scheduled, and for the disk.
  std::printf("load average at the end: %s\n", acctlock::test::read_file("/proc/loadavg").c_str());

  std::printf("%-11s %-13s %9s %9s %9s\n", "path", "module", "p50 ms", "p99 ms", "mean ms");
  for (const Path path : kPaths) {
    for (const Module module : {Module::acctlock, Module::faillock}) {
      const Timings& t = timings[static_cast<int>(module)][static_cast<int>(path)];
      std::printf("%-11s %-13s %9.3f %9.3f %9.3f\n", path_name(path), module_name(module),
                  t.percentile(0.50), t.percentile(0.99), t.mean());
    }
  }
  std::printf("\n");
  for (const Path path : kPaths) {
    const double acctlock = timings[0][static_cast<int>(path)].percentile(0.50);
    const double faillock = timings[1][static_cast<int>(path)].percentile(0.50);
    std::printf("%-11s p50 acctlock/faillock = %.3f (%+.3f ms)\n", path_name(path),
                acctlock / faillock, acctlock - faillock);
  }
  return 0;
}
