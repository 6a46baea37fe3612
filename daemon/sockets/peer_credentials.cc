// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/sockets/peer_credentials.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace acctlock {
namespace {

// Buffer size for the reentrant NSS calls; grown on ERANGE.
long initial_buffer_size(int name) {
  const long size = sysconf(name);
  return size > 0 ? size : 16384;
}

std::optional<passwd> lookup_user(const std::string& user, std::vector<char>& buffer) {
  buffer.resize(static_cast<std::size_t>(initial_buffer_size(_SC_GETPW_R_SIZE_MAX)));
  for (;;) {
    passwd entry{};
    passwd* found = nullptr;
    const int error = getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return entry;
  }
}

}  // namespace

std::optional<PeerCredentials> peer_credentials(int socket_fd) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0 ||
      size != sizeof credentials) {
    return std::nullopt;
  }
  return PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
}

std::optional<uid_t> UserDirectory::uid_of(const std::string& user) {
  const auto now = std::chrono::steady_clock::now();
  if (auto it = cache_.find(user); it != cache_.end() && now - it->second.fetched < ttl_) {
    return it->second.uid;
  }
  // Keep the cache bounded when a scanner tries thousands of invented names.
  if (cache_.size() >= 4096) cache_.clear();
  std::vector<char> buffer;
  const auto entry = lookup_user(user, buffer);
  std::optional<uid_t> uid;
  if (entry) uid = entry->pw_uid;
  cache_[user] = Entry{uid, now};
  return uid;
}

bool UserDirectory::is_in_group(uid_t uid, const std::string& group_name) {
  if (uid == 0) return true;
  if (group_name.empty()) return false;

  std::vector<char> buffer(static_cast<std::size_t>(initial_buffer_size(_SC_GETGR_R_SIZE_MAX)));
  struct group entry {};
  struct group* found = nullptr;
  for (;;) {
    const int error = getgrnam_r(group_name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 22)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return false;
    break;
  }

  std::vector<char> user_buffer(
      static_cast<std::size_t>(initial_buffer_size(_SC_GETPW_R_SIZE_MAX)));
  passwd user{};
  passwd* user_found = nullptr;
  if (getpwuid_r(uid, &user, user_buffer.data(), user_buffer.size(), &user_found) != 0 ||
      user_found == nullptr) {
    return false;
  }
  if (user.pw_gid == entry.gr_gid) return true;
  for (char** member = entry.gr_mem; member != nullptr && *member != nullptr; ++member) {
    if (std::string(*member) == user.pw_name) return true;
  }
  return false;
}

}  // namespace acctlock
