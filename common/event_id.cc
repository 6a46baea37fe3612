// SPDX-License-Identifier: BSD-3-Clause
#include "common/event_id.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace acctlock {

std::uint64_t new_event_id() noexcept {
  std::uint64_t id = 0;
  for (;;) {
    // Blocks only before the kernel's pool is first seeded, early at boot.
    const ssize_t n = ::getrandom(&id, sizeof id, 0);
    if (n == static_cast<ssize_t>(sizeof id)) break;
    if (n < 0 && errno == EINTR) continue;
    static std::uint64_t counter = 0;
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    id = (static_cast<std::uint64_t>(now.tv_sec) << 32) ^ static_cast<std::uint64_t>(now.tv_nsec) ^
         (static_cast<std::uint64_t>(::getpid()) << 40) ^ ++counter;
    break;
  }
  return id == 0 ? 1 : id;
}

}  // namespace acctlock
