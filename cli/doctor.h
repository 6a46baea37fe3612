// SPDX-License-Identifier: BSD-3-Clause
// `acctlock doctor`: checks what a lockout depends on and explains what is
// wrong, naming the file and line. Each check reads; none changes anything.
#pragma once

#include <string>
#include <vector>

#include "cli/pam_stack_check.h"

namespace acctlock::cli {

struct DoctorInputs {
  std::string config_path;
  bool config_given = false;  // a missing file named with --config is a problem
  std::string admin_socket;   // --socket; empty: the configuration's
  std::string pam_dir = "/etc/pam.d";
};

// The configuration, the sockets, the database, the daemon and the PAM
// stacks, in that order.
std::vector<Finding> run_doctor(const DoctorInputs& inputs);

const char* severity_name(Finding::Severity severity);

}  // namespace acctlock::cli
