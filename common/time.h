// SPDX-License-Identifier: BSD-3-Clause
// Time as acctlock stores and compares it: whole seconds of wall-clock time.
//
// Lock expiry is kept as wall-clock time so that it survives restarts and
// reboots. The price is that a clock jump moves it: setting the clock forward
// ends locks early, setting it back makes them last longer. docs/policy.md
// explains this to operators.
#pragma once

#include <chrono>

namespace acctlock {

using Seconds = std::chrono::seconds;
using TimePoint = std::chrono::sys_seconds;

inline TimePoint wall_clock_now() {
  return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
}

}  // namespace acctlock
