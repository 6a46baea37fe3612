// SPDX-License-Identifier: BSD-3-Clause
// One whole PAM transaction through real libpam (pam_start_confdir ...
// pam_end), for the tests, the pam_login tool and the benchmark.
#pragma once

#include <string>
#include <vector>

namespace acctlock::test {

enum class PamPhase { auth, account, password };

struct PamTransaction {
  std::string confdir;  // directory holding the service file
  std::string service;
  std::string user;
  std::string password;      // the answer to every prompt...
  std::string new_password;  // ...but the first, in the password phase, when set
  std::vector<PamPhase> phases{PamPhase::auth, PamPhase::account};
  std::string rhost;  // PAM_RHOST, as sshd sets it; unset when empty
};

struct PamOutcome {
  int status = -1;                       // PAM code of the first phase that failed, or PAM_SUCCESS
  std::string failed_phase;              // empty when all succeeded
  std::string status_text;               // pam_strerror of status
  std::vector<std::string> messages;     // PAM_TEXT_INFO and PAM_ERROR_MSG texts, in order
  std::vector<std::string> phase_lines;  // "auth: Success", one per phase run
};

// Runs the phases in order and stops at the first failure.
PamOutcome run_pam(const PamTransaction& transaction);

const char* phase_name(PamPhase phase);

}  // namespace acctlock::test
