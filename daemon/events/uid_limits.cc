// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/events/uid_limits.h"

#include <sys/resource.h>

#include <algorithm>

namespace acctlock {

UidLimitSettings fit_to_file_limit(UidLimitSettings wanted, std::size_t other_descriptors,
                                   std::string& report, bool& shortened) {
  shortened = false;
  const rlim_t needed = wanted.max_connections + other_descriptors;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    report = "file limit unknown; using max_connections=" + std::to_string(wanted.max_connections);
    return wanted;
  }
  if (limit.rlim_cur < needed) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max == RLIM_INFINITY ? needed : std::min(needed, limit.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  UidLimitSettings used = wanted;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    shortened = true;
    const std::size_t room =
        limit.rlim_cur > other_descriptors + 2 ? limit.rlim_cur - other_descriptors : 2;
    used.max_connections = room;
    // Keep root's reserve, shrunk in proportion but never to nothing, and
    // always leave non-root peers at least one connection.
    used.root_reserved = std::max<std::size_t>(
        1, std::min(room - 1, wanted.root_reserved * room / wanted.max_connections));
  }
  report = "file limit " +
           (limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                            : std::to_string(limit.rlim_cur)) +
           "; event socket: max_connections=" + std::to_string(used.max_connections) +
           " (root_reserved_connections=" + std::to_string(used.root_reserved) +
           ", max_connections_per_uid=" + std::to_string(used.per_uid) +
           ", max_requests_per_uid=" + std::to_string(used.requests_per_second) + "/s)";
  if (shortened) {
    report += "; lowered from max_connections=" + std::to_string(wanted.max_connections) +
              ", which needs a file limit of " + std::to_string(needed) +
              " (LimitNOFILE= in acctlockd.service)";
  }
  return used;
}

bool UidLimits::admit_connection(uid_t uid) {
  if (total_ >= settings_.max_connections) return false;
  if (uid != 0) {
    const std::size_t non_root_cap = settings_.max_connections - settings_.root_reserved;
    if (non_root_ >= non_root_cap) return false;
    PerUid& entry = uids_[uid];
    if (entry.connections >= settings_.per_uid) return false;
    ++entry.connections;
    ++non_root_;
  }
  ++total_;
  return true;
}

void UidLimits::release_connection(uid_t uid) {
  if (total_ > 0) --total_;
  if (uid == 0) return;
  if (non_root_ > 0) --non_root_;
  const auto found = uids_.find(uid);
  if (found != uids_.end() && found->second.connections > 0) --found->second.connections;
  tidy(uid, Clock::now());
}

bool UidLimits::admit_request(uid_t uid, Clock::time_point now) {
  if (uid == 0) return true;
  PerUid& entry = uids_[uid];
  const double rate = settings_.requests_per_second;
  if (!entry.bucket_started) {
    entry.bucket_started = true;
    entry.tokens = rate;  // a full bucket: a burst of one second's worth
    entry.refilled = now;
  } else {
    const std::chrono::duration<double> elapsed = now - entry.refilled;
    entry.tokens = std::min(rate, entry.tokens + elapsed.count() * rate);
    entry.refilled = now;
  }
  if (entry.tokens < 1.0) return false;
  entry.tokens -= 1.0;
  return true;
}

bool UidLimits::should_log_refusal(uid_t uid, Clock::time_point now, std::uint64_t& suppressed) {
  PerUid& entry = uids_[uid];
  if (entry.ever_logged && now - entry.logged < kLogInterval) {
    ++entry.suppressed;
    return false;
  }
  suppressed = entry.suppressed;
  entry.suppressed = 0;
  entry.logged = now;
  entry.ever_logged = true;
  return true;
}

std::size_t UidLimits::connections_of(uid_t uid) const {
  const auto found = uids_.find(uid);
  return found == uids_.end() ? 0 : found->second.connections;
}

void UidLimits::tidy(uid_t uid, Clock::time_point now) {
  const auto found = uids_.find(uid);
  if (found == uids_.end()) return;
  const PerUid& entry = found->second;
  // A uid with no connection keeps its entry while its log interval runs
  // and until its bucket is full again: reconnecting must not refill it.
  const std::chrono::duration<double> since_refill = now - entry.refilled;
  const bool bucket_full =
      !entry.bucket_started ||
      entry.tokens + since_refill.count() * settings_.requests_per_second >=
          settings_.requests_per_second;
  if (entry.connections == 0 && bucket_full &&
      (!entry.ever_logged || now - entry.logged >= kLogInterval)) {
    uids_.erase(found);
  }
}

}  // namespace acctlock
