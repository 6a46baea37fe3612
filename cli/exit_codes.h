// SPDX-License-Identifier: BSD-3-Clause
// acctlock's exit codes, documented in acctlock(8) and --help. Scripts test
// them, so the numbers never change meaning.
#pragma once

#include "common/admin_protocol.h"

namespace acctlock::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;           // the daemon could not do it, or answered nonsense
inline constexpr int kExitUsage = 2;             // bad flags or arguments
inline constexpr int kExitNoSuchUser = 3;        // no record and no such user
inline constexpr int kExitPermissionDenied = 4;  // not root, not in admin_socket_group
inline constexpr int kExitUnreachable = 5;       // no daemon answering on the admin socket

// The exit code for a daemon answer's "result".
inline int exit_code_for(admin::Result result) {
  switch (result) {
    case admin::Result::success:
      return kExitOk;
    case admin::Result::no_such_user:
      return kExitNoSuchUser;
    case admin::Result::permission_denied:
      return kExitPermissionDenied;
    case admin::Result::invalid:
      return kExitUsage;
    case admin::Result::error:
    case admin::Result::unsupported:
      return kExitFailure;
  }
  return kExitFailure;
}

}  // namespace acctlock::cli
