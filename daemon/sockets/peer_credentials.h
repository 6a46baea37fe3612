// SPDX-License-Identifier: BSD-3-Clause
// Who is on the other end of a Unix socket, and who a user name is.
//
// acctlockd authorises every request by the kernel's SO_PEERCRED, never by
// anything the client says about itself.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>

namespace acctlock {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The credentials the kernel recorded when the peer connected, or nullopt.
std::optional<PeerCredentials> peer_credentials(int socket_fd);

// Resolves user names to uids through NSS, remembering answers for a short
// while: a burst of failures for one user costs one lookup, and a directory
// change (a new user, a deleted one) is seen within `ttl`.
class UserDirectory {
 public:
  explicit UserDirectory(std::chrono::seconds ttl = std::chrono::seconds(30)) : ttl_(ttl) {}

  // nullopt when the user does not exist (or NSS failed).
  std::optional<uid_t> uid_of(const std::string& user);

  // Whether `uid` is root or a member (primary or supplementary) of `group_name`.
  static bool is_in_group(uid_t uid, const std::string& group_name);

 private:
  struct Entry {
    std::optional<uid_t> uid;
    std::chrono::steady_clock::time_point fetched;
  };
  std::chrono::seconds ttl_;
  std::unordered_map<std::string, Entry> cache_;
};

}  // namespace acctlock
