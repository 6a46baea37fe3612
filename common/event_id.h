// SPDX-License-Identifier: BSD-3-Clause
// Event ids: what makes a resent event count once (common/protocol.h).
//
// Kept apart from the client so that any client (the PAM module, a test, a
// third-party tool) draws its ids the same way, and small enough to port to
// a freestanding module: one getrandom(2) call, no allocation, no state.
#pragma once

#include <cstdint>

namespace acctlock {

// A fresh, unpredictable, non-zero id for one event. Draw it once per event
// and keep it for every resend of that event. From getrandom(2); if that
// fails (a kernel before 3.17, a seccomp filter), from the clock, pid and a
// counter, which is still unique per host though guessable.
std::uint64_t new_event_id() noexcept;

}  // namespace acctlock
