// SPDX-License-Identifier: BSD-3-Clause
// pam_login: one PAM transaction through real libpam, for when it must run as
// a process of its own: under valgrind, as another user (setpriv), in the
// demo.
//
//   pam_login --confdir DIR --service NAME --user USER [--password TEXT]
//             [--new-password TEXT] [--phase auth|account|password]...
//
// Runs the phases in order (default: auth, then account) and stops at the
// first that fails. Prints each conversation message as "message: TEXT" and
// each phase's result as "PHASE: pam_strerror text". Exit status: 0 when every
// phase succeeded, otherwise the PAM code of the phase that failed; 2 for a
// usage error.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/pam_module/pam_transaction.h"

namespace {

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: pam_login --confdir DIR --service NAME --user USER [--password TEXT]\n"
               "                 [--new-password TEXT] [--phase auth|account|password]...\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using acctlock::test::PamPhase;
  acctlock::test::PamTransaction transaction;
  transaction.phases.clear();
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--confdir") {
      transaction.confdir = value;
    } else if (flag == "--service") {
      transaction.service = value;
    } else if (flag == "--user") {
      transaction.user = value;
    } else if (flag == "--password") {
      transaction.password = value;
    } else if (flag == "--new-password") {
      transaction.new_password = value;
    } else if (flag == "--phase" && value == "auth") {
      transaction.phases.push_back(PamPhase::auth);
    } else if (flag == "--phase" && value == "account") {
      transaction.phases.push_back(PamPhase::account);
    } else if (flag == "--phase" && value == "password") {
      transaction.phases.push_back(PamPhase::password);
    } else {
      usage();
    }
  }
  if (transaction.confdir.empty() || transaction.service.empty() || transaction.user.empty()) {
    usage();
  }
  if (transaction.phases.empty()) transaction.phases = {PamPhase::auth, PamPhase::account};

  const acctlock::test::PamOutcome outcome = acctlock::test::run_pam(transaction);
  for (const std::string& message : outcome.messages) std::printf("message: %s\n", message.c_str());
  for (const std::string& line : outcome.phase_lines) std::printf("%s\n", line.c_str());
  if (outcome.failed_phase == "start") std::printf("start: %s\n", outcome.status_text.c_str());
  return outcome.status;
}
