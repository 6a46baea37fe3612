// SPDX-License-Identifier: BSD-3-Clause
// GET /metrics over HTTP/1.1, for Prometheus, on a TCP socket that systemd
// passes in (acctlockd-metrics.socket) or that the caller inherited
// (acctlockd --metrics-fd): acctlockd never creates a network socket itself,
// so RestrictAddressFamilies=AF_UNIX and PrivateNetwork= stay in its unit.
//
// HTTP is parsed by Boost.Beast. Everything is asynchronous on the daemon's
// event loop with a deadline per connection, so a slow or silent client
// costs a socket and a timer, never the loop's time; the connection count is
// capped, and the page is rendered at most once per render_interval however
// often it is asked for. Other paths get 404, other methods 405 with Allow,
// a malformed request 400, an oversized header 431.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

namespace acctlock {

struct MetricsServerLimits {
  // For a whole request to arrive, and for the answer to be taken.
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  std::size_t max_connections = 32;
  std::size_t max_header_bytes = 8 * 1024;
  // A page younger than this is served again instead of rendered anew.
  std::chrono::milliseconds render_interval{std::chrono::seconds(1)};
};

class MetricsSession;

class MetricsServer {
 public:
  using Acceptor = boost::asio::ip::tcp::acceptor;

  MetricsServer(Acceptor acceptor, std::function<std::string()> render,
                MetricsServerLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void start();
  void stop();  // stops accepting and closes every connection

  // "127.0.0.1:9479", for the start-up log.
  std::string local_address() const;

 private:
  friend class MetricsSession;
  void do_accept();
  // The page, from the cache when it is fresh.
  std::shared_ptr<const std::string> page();

  Acceptor acceptor_;
  std::function<std::string()> render_;
  MetricsServerLimits limits_;
  std::shared_ptr<const std::string> cached_page_;
  std::chrono::steady_clock::time_point rendered_at_{};
  std::shared_ptr<std::unordered_set<MetricsSession*>> sessions_ =
      std::make_shared<std::unordered_set<MetricsSession*>>();
  bool stopped_ = false;
};

// Adopts an inherited descriptor as the metrics acceptor. Throws
// std::runtime_error unless it is a listening TCP (IPv4 or IPv6) socket.
MetricsServer::Acceptor adopt_tcp_socket(boost::asio::io_context& io, int fd);

}  // namespace acctlock
