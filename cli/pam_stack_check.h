// SPDX-License-Identifier: BSD-3-Clause
// `acctlock doctor`'s look at the PAM configuration: for each service in a
// pam.d directory, the auth, account and password stacks as libpam builds
// them (following `@include`, `include` and `substack`), and whether
// pam_acctlock.so sits where it works. Pure file reading: no PAM calls, so
// it is the dry run of a PAM change, and it is tested on directories that
// the tests write.
#pragma once

#include <string>
#include <vector>

namespace acctlock::cli {

struct Finding {
  enum class Severity { ok, warning, problem };
  Severity severity = Severity::ok;
  std::string where;  // "FILE:LINE", "FILE", or a path
  std::string text;
};

// One line of an expanded stack, with where it was written.
struct PamLine {
  std::string file;
  int line = 0;
  std::string type;     // auth, account, password, session (no leading '-')
  std::string control;  // "required", "[success=1 default=ignore]", ...
  std::string module;   // the module's file name, without its directory
  std::vector<std::string> arguments;
  std::string where() const { return file + ":" + std::to_string(line); }
};

// The lines of `type` that libpam runs for `service`, in order. A problem
// reading a file or an include loop is added to `findings`.
std::vector<PamLine> expand_stack(const std::string& pam_dir, const std::string& service,
                                  const std::string& type, std::vector<Finding>& findings);

// Every service in `pam_dir` (each file but the parts services include:
// common-*, *-auth, postlogin), checked.
// Services that check no password and do not use pam_acctlock are skipped.
std::vector<Finding> check_pam_dir(const std::string& pam_dir);

}  // namespace acctlock::cli
