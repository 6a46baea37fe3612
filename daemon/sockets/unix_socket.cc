// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/sockets/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace acctlock {
namespace {

std::runtime_error socket_error(const std::string& path, const std::string& what, int error) {
  return std::runtime_error(path + ": " + what + ": " + std::strerror(error));
}

// Whether something accepts connections at `path` right now.
bool someone_listens(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  const bool live = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  return live;
}

}  // namespace

UnixAcceptor listen_unix_socket(boost::asio::io_context& io, const std::string& path, mode_t mode,
                                gid_t gid) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw std::runtime_error(path + ": socket path is empty or longer than " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
    throw socket_error(parent.string(), "cannot create directory", errno);
  }

  struct stat info {};
  if (lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      throw std::runtime_error(path + ": exists and is not a socket; refusing to replace it");
    }
    if (someone_listens(path)) {
      throw std::runtime_error(path + ": another process is already serving this socket");
    }
    if (unlink(path.c_str()) != 0) throw socket_error(path, "cannot remove stale socket", errno);
  }

  using Protocol = boost::asio::local::stream_protocol;
  UnixAcceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(Protocol(), ec);
  if (ec) throw std::runtime_error(path + ": cannot create socket: " + ec.message());
  // The mode is set on the socket before bind (Linux gives the new file the
  // socket inode's mode, less the umask), never by path afterwards: a chmod
  // by path would follow a symlink swapped in after bind. The umask keeps
  // exactly `mode` whatever the process's own umask.
  if (fchmod(acceptor.native_handle(), mode) != 0) {
    throw socket_error(path, "cannot set mode", errno);
  }
  const mode_t old_umask = umask(static_cast<mode_t>(~mode & 0777));
  acceptor.bind(Protocol::endpoint(path), ec);
  umask(old_umask);
  if (ec) throw std::runtime_error(path + ": cannot bind: " + ec.message());
  // lchown: the group, too, goes to the socket we made or to nothing.
  if (gid != static_cast<gid_t>(-1) && lchown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) {
    throw socket_error(path, "cannot set group", errno);
  }
  acceptor.listen(SOMAXCONN, ec);
  if (ec) throw std::runtime_error(path + ": cannot listen: " + ec.message());
  return acceptor;
}

UnixAcceptor adopt_unix_socket(boost::asio::io_context& io, int fd) {
  return UnixAcceptor(io, boost::asio::local::stream_protocol(), fd);
}

}  // namespace acctlock
