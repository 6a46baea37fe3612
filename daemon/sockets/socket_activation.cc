// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/sockets/socket_activation.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace acctlock {
namespace {

std::string bound_path(int fd) {
  sockaddr_un address{};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {};
  if (length <= offsetof(sockaddr_un, sun_path) || address.sun_path[0] == '\0') return {};
  return std::string(address.sun_path,
                     strnlen(address.sun_path, length - offsetof(sockaddr_un, sun_path)));
}

}  // namespace

InheritedSockets take_inherited_sockets(const std::string& event_socket_path,
                                        const std::string& admin_socket_path) {
  char** raw_names = nullptr;
  const int count = sd_listen_fds_with_names(/*unset_environment=*/1, &raw_names);
  if (count < 0) {
    throw std::runtime_error(std::string("reading the sockets passed by systemd: ") +
                             std::strerror(-count));
  }
  // The names array and its strings are ours to free.
  const auto free_names = [count](char** names) {
    if (names == nullptr) return;
    for (int i = 0; i < count; ++i) std::free(names[i]);
    std::free(names);
  };
  std::unique_ptr<char*, decltype(free_names)> names(raw_names, free_names);

  InheritedSockets sockets;
  for (int i = 0; i < count; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    const std::string name = names != nullptr && names.get()[i] != nullptr ? names.get()[i] : "";
    const std::string what = "socket " + std::to_string(fd) + " (\"" + name + "\") from systemd";
    if (name == "metrics") {
      if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, /*listening=*/1) <= 0 ||
          sd_is_socket_unix(fd, 0, -1, nullptr, 0) > 0) {
        throw std::runtime_error(what + " is not a listening TCP socket");
      }
      if (sockets.metrics) throw std::runtime_error(what + ": a second socket for the same role");
      sockets.metrics = fd;
      continue;
    }
    if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
      throw std::runtime_error(what + " is not a listening Unix stream socket");
    }
    std::optional<int>* role = nullptr;
    if (name == "event") {
      role = &sockets.event;
    } else if (name == "admin") {
      role = &sockets.admin;
    } else {
      // No FileDescriptorName=: systemd names it after its unit, or
      // "unknown". The address decides.
      const std::string path = bound_path(fd);
      if (!path.empty() && path == event_socket_path) {
        role = &sockets.event;
      } else if (!path.empty() && path == admin_socket_path) {
        role = &sockets.admin;
      } else {
        throw std::runtime_error(what +
                                 " is neither \"event\" nor \"admin\" (set "
                                 "FileDescriptorName=) and is bound to \"" +
                                 path + "\", which is neither event_socket nor admin_socket");
      }
    }
    if (role->has_value()) throw std::runtime_error(what + ": a second socket for the same role");
    *role = fd;
  }
  return sockets;
}

}  // namespace acctlock
