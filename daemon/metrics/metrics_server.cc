// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/metrics/metrics_server.h"

#include <systemd/sd-daemon.h>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "daemon/log.h"

namespace acctlock {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

// Prometheus's text format, version 0.0.4.
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsSession : public std::enable_shared_from_this<MetricsSession> {
 public:
  MetricsSession(MetricsServer& server, asio::ip::tcp::socket socket)
      : server_(server), sessions_(server.sessions_), stream_(std::move(socket)) {
    sessions_->insert(this);
  }
  ~MetricsSession() { sessions_->erase(this); }

  void start() { read_request(); }

  void close() {
    error_code ignored;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits_.max_header_bytes));
    parser_->body_limit(0);  // a GET has no body, and nothing here takes one
    stream_.expires_after(server_.limits_.timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return close();
    }
    if (ec == http::error::header_limit) {
      return respond_error(http::status::request_header_fields_too_large, "header too large\n",
                           false);
    }
    if (ec == http::error::body_limit) {
      return respond_error(http::status::payload_too_large, "a request body is not accepted\n",
                           false);
    }
    if (ec) return respond_error(http::status::bad_request, "malformed request\n", false);
    handle(parser_->get());
  }

  void handle(const http::request<http::empty_body>& request) {
    const bool keep_alive = request.keep_alive();
    std::string_view target(request.target().data(), request.target().size());
    if (const auto query = target.find('?'); query != std::string_view::npos) {
      target = target.substr(0, query);
    }
    if (target != "/metrics") {
      return respond_error(http::status::not_found, "not found; the metrics are at /metrics\n",
                           keep_alive);
    }
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      auto response = text_response(http::status::method_not_allowed,
                                    "only GET and HEAD are allowed\n", keep_alive);
      response->set(http::field::allow, "GET, HEAD");
      return send(std::move(response));
    }
    const auto page = server_.page();
    auto response =
        std::make_shared<http::response<http::string_body>>(http::status::ok, request.version());
    response->set(http::field::server, "acctlockd");
    response->set(http::field::content_type, kMetricsContentType);
    response->set(http::field::cache_control, "no-store");
    response->keep_alive(keep_alive);
    if (request.method() == http::verb::head) {
      response->content_length(page->size());
    } else {
      response->body() = *page;
      response->prepare_payload();
    }
    send(std::move(response));
  }

  std::shared_ptr<http::response<http::string_body>> text_response(http::status status,
                                                                   const std::string& text,
                                                                   bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>(status, 11);
    response->set(http::field::server, "acctlockd");
    response->set(http::field::content_type, "text/plain; charset=utf-8");
    response->keep_alive(keep_alive);
    response->body() = text;
    response->prepare_payload();
    return response;
  }

  void respond_error(http::status status, const std::string& text, bool keep_alive) {
    send(text_response(status, text, keep_alive));
  }

  void send(std::shared_ptr<http::response<http::string_body>> response) {
    stream_.expires_after(server_.limits_.timeout);
    const bool keep_alive = response->keep_alive();
    http::async_write(
        stream_, *response,
        [self = shared_from_this(), response, keep_alive](error_code ec, std::size_t) {
          if (ec || !keep_alive) return self->close();
          self->read_request();
        });
  }

  MetricsServer& server_;
  std::shared_ptr<std::unordered_set<MetricsSession*>> sessions_;  // the server's, kept alive
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
};

MetricsServer::MetricsServer(Acceptor acceptor, std::function<std::string()> render,
                             MetricsServerLimits limits)
    : acceptor_(std::move(acceptor)), render_(std::move(render)), limits_(limits) {}

MetricsServer::~MetricsServer() {
  stop();
}

void MetricsServer::start() {
  do_accept();
}

void MetricsServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  for (MetricsSession* session : std::unordered_set<MetricsSession*>(*sessions_)) {
    session->close();
  }
}

std::string MetricsServer::local_address() const {
  error_code ec;
  const auto endpoint = acceptor_.local_endpoint(ec);
  if (ec) return "?";
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

std::shared_ptr<const std::string> MetricsServer::page() {
  const auto now = std::chrono::steady_clock::now();
  if (!cached_page_ || now - rendered_at_ >= limits_.render_interval) {
    cached_page_ = std::make_shared<const std::string>(render_());
    rendered_at_ = now;
  }
  return cached_page_;
}

void MetricsServer::do_accept() {
  acceptor_.async_accept([this](error_code ec, asio::ip::tcp::socket socket) {
    if (stopped_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      log_error("metrics socket: accept failed: " + ec.message());
      return do_accept();
    }
    if (sessions_->size() >= limits_.max_connections) {
      // Closing at once is the cheapest answer; Prometheus retries next scrape.
      log_warning("metrics socket: " + std::to_string(sessions_->size()) +
                  " connections open, closing a new one");
    } else {
      std::make_shared<MetricsSession>(*this, std::move(socket))->start();
    }
    do_accept();
  });
}

MetricsServer::Acceptor adopt_tcp_socket(asio::io_context& io, int fd) {
  const bool v4 = sd_is_socket_inet(fd, AF_INET, SOCK_STREAM, /*listening=*/1, 0) > 0;
  const bool v6 = !v4 && sd_is_socket_inet(fd, AF_INET6, SOCK_STREAM, /*listening=*/1, 0) > 0;
  if (!v4 && !v6) {
    throw std::runtime_error("descriptor " + std::to_string(fd) + " is not a listening TCP socket");
  }
  return MetricsServer::Acceptor(io, v4 ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd);
}

}  // namespace acctlock
