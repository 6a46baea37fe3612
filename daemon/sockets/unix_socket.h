// SPDX-License-Identifier: BSD-3-Clause
// Listening Unix sockets: taken from systemd when socket-activated, created
// here otherwise.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <string>

namespace acctlock {

using UnixAcceptor = boost::asio::local::stream_protocol::acceptor;

// Binds and listens on `path` with permission bits `mode` (and group `gid`
// unless it is -1). Creates a missing parent directory (0755). A stale socket
// file left by a crash is replaced; a live one (another acctlockd answering)
// or a non-socket file at `path` is an error. Throws std::runtime_error with
// a message naming the path.
UnixAcceptor listen_unix_socket(boost::asio::io_context& io, const std::string& path, mode_t mode,
                                gid_t gid = static_cast<gid_t>(-1));

// Wraps an inherited listening descriptor (socket activation).
UnixAcceptor adopt_unix_socket(boost::asio::io_context& io, int fd);

}  // namespace acctlock
