// SPDX-License-Identifier: BSD-3-Clause
// Fair shares per peer uid on the event and admin sockets.
//
// The event socket is open to every local user, so one uid must not be able
// to take what root's PAM stacks (sshd, login, su, sudo) need: connections
// beyond `root_reserved` are never given to non-root peers, each non-root uid
// holds at most `per_uid` connections, and its requests are rate limited by a
// token bucket. A peer over its share is told so (the `busy` verdict), not
// silently closed, so it never looks like an outage; and each uid's refusals
// are logged once per interval with a count, so a flood cannot flood the log.
// Loop thread only; every table here is bounded by the open connections.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace acctlock {

struct UidLimitSettings {
  std::size_t max_connections = 4096;  // in all, root included
  std::size_t root_reserved = 1024;    // of max_connections, for root peers only
  std::size_t per_uid = 64;            // connections of one non-root uid
  std::uint32_t requests_per_second = 20;  // one non-root uid, all its connections
};

// Raises the soft RLIMIT_NOFILE as far as `wanted` connections (plus the
// admin socket's and a margin for the database, journal and listening
// sockets) need, up to the hard limit; if that is still short, lowers the
// connection limits to fit, keeping root's reserve. `report` says what was
// found and what is used, for the start-up log; `shortened` is set when the
// limits had to be lowered.
UidLimitSettings fit_to_file_limit(UidLimitSettings wanted, std::size_t other_descriptors,
                                   std::string& report, bool& shortened);

class UidLimits {
 public:
  using Clock = std::chrono::steady_clock;

  explicit UidLimits(UidLimitSettings settings) : settings_(settings) {}

  // Whether a new connection from `uid` may be served; counts it if so.
  // Release each admitted connection exactly once.
  bool admit_connection(uid_t uid);
  void release_connection(uid_t uid);

  // Whether one more request from `uid` fits its rate. Root always fits.
  bool admit_request(uid_t uid, Clock::time_point now);

  // True when a refusal of `uid` should be logged now (the first one in
  // `interval`); `suppressed` receives how many were not logged since.
  bool should_log_refusal(uid_t uid, Clock::time_point now, std::uint64_t& suppressed);

  std::size_t connections() const { return total_; }
  std::size_t connections_of(uid_t uid) const;
  const UidLimitSettings& settings() const { return settings_; }

  static constexpr std::chrono::seconds kLogInterval{10};

 private:
  struct PerUid {
    std::size_t connections = 0;
    double tokens = 0;
    Clock::time_point refilled{};
    bool bucket_started = false;
    Clock::time_point logged{};
    bool ever_logged = false;
    std::uint64_t suppressed = 0;
  };
  // Drops entries with nothing to remember, so the table stays bounded by
  // the uids that hold connections or were refused lately.
  void tidy(uid_t uid, Clock::time_point now);

  UidLimitSettings settings_;
  std::size_t total_ = 0;
  std::size_t non_root_ = 0;
  std::unordered_map<uid_t, PerUid> uids_;
};

}  // namespace acctlock
