// SPDX-License-Identifier: BSD-3-Clause
// GET /metrics against a real acctlockd given a loopback TCP socket with
// --metrics-fd: the page as Prometheus's own promtool reads it, the HTTP
// errors, the bounded labels, and a real Prometheus server (Debian's
// package) that scrapes the daemon and answers a PromQL query about a
// lockout this test caused. Traffic stays on 127.0.0.1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;
using ::testing::HasSubstr;
using ::testing::Not;

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return condition();
}

// A listening socket on 127.0.0.1 with a port the kernel picks. Without
// close-on-exec: the daemon inherits it, as from systemd.
int listen_loopback(std::uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(listen(fd, 64), 0);
  socklen_t size = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  *port = ntohs(address.sin_port);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  // Refused is for the caller to judge: a server may not be up yet.
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Sends `request` as it is and reads the answer until the server closes.
std::string http_exchange(std::uint16_t port, const std::string& request) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char chunk[65536];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    response.append(chunk, static_cast<std::size_t>(n));
  }
  close(fd);
  return response;
}

std::string get(std::uint16_t port, const std::string& target = "/metrics",
                const std::string& method = "GET") {
  return http_exchange(
      port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listen_fd_ = listen_loopback(&port_);
    daemon_.set_launch_extras({"--metrics-fd=" + std::to_string(listen_fd_)}, {});
    ASSERT_TRUE(daemon_.start());
    close(listen_fd_);  // the daemon has its own copy
  }

  TempDir dir_;
  // Small bounds, so that a few dozen requests reach them: spray detection
  // at 3 users from 2 sources, the source table and the history at their
  // lowest caps.
  DaemonProcess daemon_{dir_,
                        "deny = 2\nunlock_time = 10m\nhost_name = metrics-web-01\n"
                        "spray_users = 3\nspray_sources = 2\n"
                        "max_tracked_sources = 16\nhistory_max_rows = 100\n"
                        "history_root_reserved_rows = 50\n"};
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
};

// Sources (issue 11): source_deny (default 10) failures from one address,
// whatever users they name, block it, and the gauge says so.
TEST_F(MetricsTest, TheBlockedSourcesGaugeCountsABlockedAddress) {
  EXPECT_THAT(body_of(get(port_)), HasSubstr("acctlock_blocked_sources 0\n"));
  for (int i = 0; i < 10; ++i) {
    daemon_.request(MessageType::failure, i % 2 ? "daemon" : "bin", "sshd", "192.0.2.33");
  }
  daemon_.request(MessageType::failure, "sys", "sshd", "192.0.2.34");
  std::string page;
  EXPECT_TRUE(eventually([&] {
    page = body_of(get(port_));
    return page.find("acctlock_blocked_sources 1\n") != std::string::npos;
  })) << page;
  EXPECT_THAT(page, HasSubstr("acctlock_tracked_sources 2\n"));
  // The page names no address.
  EXPECT_THAT(page, Not(HasSubstr("192.0.2.")));
}

TEST_F(MetricsTest, ThePageCountsALockoutAndPromtoolAcceptsIt) {
  EXPECT_EQ(daemon_.request(MessageType::failure, "root", "sshd").verdict,
            protocol::Verdict::allowed);
  EXPECT_EQ(daemon_.request(MessageType::failure, "root", "sshd").verdict,
            protocol::Verdict::locked);
  daemon_.request(MessageType::success, "daemon", "login");
  // A success is answered before its commit, and counted after it.
  std::string response;
  EXPECT_TRUE(eventually([&] {
    response = get(port_);
    return response.find("acctlock_auth_successes_total{service=\"login\"} 1\n") !=
           std::string::npos;
  }));
  ASSERT_THAT(response, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  const std::string page = body_of(response);
  EXPECT_THAT(page, HasSubstr("acctlock_auth_failures_total{service=\"sshd\"} 2\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_auth_successes_total{service=\"login\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_lockouts_total{kind=\"failures\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_locked_accounts{kind=\"failures\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_tracked_users 1\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_build_info{version=\"" ACCTLOCK_VERSION "\"} 1\n"));
  // Issue 15: the host as the history names it, for a fleet's queries.
  EXPECT_THAT(page, HasSubstr("acctlock_host_info{host=\"metrics-web-01\",store=\"sqlite\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE acctlock_commit_duration_seconds histogram\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE acctlock_spray_suspected_total counter\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_spray_suspected_total 0\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_history_aggregated_events_total 0\n"));
  EXPECT_THAT(page, HasSubstr("acctlock_evicted_sources_total 0\n"));
  EXPECT_THAT(page, Not(HasSubstr("acctlock_commit_batch_events_count 0\n")));
  // No user name anywhere on the page.
  EXPECT_THAT(page, Not(HasSubstr("root")));

  const std::string page_path = dir_ / "metrics.txt";
  write_file(page_path, page);
  const CommandResult check =
      run_command({"/bin/sh", "-c", "exec promtool check metrics < \"$0\"", page_path});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST_F(MetricsTest, OtherPathsMethodsAndMalformedRequestsGetHttpErrors) {
  EXPECT_THAT(get(port_, "/"), HasSubstr("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(get(port_, "/metricsx"), HasSubstr("HTTP/1.1 404 Not Found"));
  const std::string post = get(port_, "/metrics", "POST");
  EXPECT_THAT(post, HasSubstr("HTTP/1.1 405 Method Not Allowed"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD"));
  EXPECT_THAT(http_exchange(port_, "NOT HTTP AT ALL\r\n\r\n"), HasSubstr("HTTP/1.1 400"));
  const std::string huge =
      "GET /metrics HTTP/1.1\r\nX: " + std::string(16 * 1024, 'a') + "\r\n\r\n";
  EXPECT_THAT(http_exchange(port_, huge), HasSubstr("HTTP/1.1 431"));
  const std::string head = get(port_, "/metrics", "HEAD");
  EXPECT_THAT(head, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_EQ(body_of(head), "");
  // A query string is ignored, as Prometheus's own exporters do.
  EXPECT_THAT(get(port_, "/metrics?x=1"), HasSubstr("HTTP/1.1 200 OK"));
}

TEST_F(MetricsTest, ServiceLabelsStayBoundedWhateverClientsSend) {
  for (int i = 0; i < 40; ++i) {
    daemon_.request(MessageType::success, "daemon", "svc" + std::to_string(i));
  }
  daemon_.request(MessageType::success, "daemon", "bad\"service\nname");
  // Successes are counted once committed, which follows their answer.
  std::string page;
  EXPECT_TRUE(eventually([&] {
    page = body_of(get(port_));
    return page.find("acctlock_auth_successes_total{service=\"other\"} 9\n") != std::string::npos;
  }));
  std::set<std::string> services;
  const std::regex line(R"re(acctlock_auth_successes_total\{service="([^"]*)"\} \d+)re");
  for (std::sregex_iterator it(page.begin(), page.end(), line), end; it != end; ++it) {
    services.insert((*it)[1]);
  }
  EXPECT_EQ(services.size(), 33u) << page;  // 32 names and "other"
  EXPECT_EQ(services.count("other"), 1u);
  EXPECT_THAT(page, HasSubstr("acctlock_auth_successes_total{service=\"other\"} 9\n"));
}

TEST_F(MetricsTest, SilentClientsNeitherStallLoginsNorOutnumberTheCap) {
  // More silent connections than the cap (32): the daemon keeps them on
  // timers and closes the excess, while logins go on being answered.
  std::vector<int> silent;
  for (int i = 0; i < 40; ++i) silent.push_back(connect_loopback(port_));
  ASSERT_THAT(silent, ::testing::Each(::testing::Ge(0)));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(daemon_.request(MessageType::check, "root").verdict, protocol::Verdict::allowed);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // The excess ones were closed at once.
  int closed = 0;
  for (const int fd : silent) {
    timeval short_wait{0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
    char byte;
    if (recv(fd, &byte, 1, 0) == 0) ++closed;
  }
  EXPECT_GE(closed, 8);
  for (const int fd : silent) close(fd);
  EXPECT_TRUE(eventually([&] { return get(port_).find("200 OK") != std::string::npos; }));
}

// A real Prometheus server on loopback, scraping every second.
class PrometheusServer {
 public:
  PrometheusServer(const TempDir& dir, std::uint16_t target_port) {
    // A free port for its web interface: bound, read, released.
    const int probe = listen_loopback(&port_);
    close(probe);
    const std::string config = dir / "prometheus.yml";
    write_file(config,
               "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
               "scrape_configs:\n  - job_name: acctlock\n    static_configs:\n"
               "      - targets: ['127.0.0.1:" +
                   std::to_string(target_port) + "']\n");
    const std::string log = dir / "prometheus.log";
    std::vector<std::string> words{"/usr/bin/prometheus", "--config.file=" + config,
                                   "--storage.tsdb.path=" + (dir / "prometheus-data"),
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                   "--log.level=warn"};
    std::vector<char*> argv;
    for (auto& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PrometheusServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  // The value of a PromQL instant query with one result, or "" for none.
  std::string query(const std::string& promql) {
    std::string encoded;
    for (const unsigned char c : promql) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      encoded += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : std::string(hex);
    }
    const std::string response = get(port_, "/api/v1/query?query=" + encoded);
    const auto answer = nlohmann::json::parse(body_of(response), nullptr, false);
    if (answer.is_discarded() || answer.value("status", "") != "success") return "";
    const auto& result = answer["data"]["result"];
    if (!result.is_array() || result.size() != 1) return "";
    return result[0]["value"][1].get<std::string>();
  }

  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(MetricsTest, ARealPrometheusScrapesTheDaemonAndSeesALockout) {
  PrometheusServer prometheus(dir_, port_);
  ASSERT_TRUE(eventually([&] { return prometheus.query("up{job=\"acctlock\"}") == "1"; }, 60s))
      << read_file(dir_ / "prometheus.log");
  EXPECT_EQ(prometheus.query("acctlock_lockouts_total{kind=\"failures\"}"), "0");

  daemon_.request(MessageType::failure, "root", "sshd");
  daemon_.request(MessageType::failure, "root", "sshd");
  EXPECT_TRUE(eventually(
      [&] { return prometheus.query("acctlock_lockouts_total{kind=\"failures\"}") == "1"; }, 30s));
  EXPECT_TRUE(
      eventually([&] { return prometheus.query("sum(acctlock_locked_accounts)") == "1"; }, 30s));
  EXPECT_EQ(prometheus.query("acctlock_auth_failures_total{service=\"sshd\"}"), "2");

  // The bounds at work: 120 failures for three users from 20 addresses
  // are a spray (3 users, 2 sources), overflow the source table (16) and
  // the history (100 rows), and each counter says so.
  EXPECT_EQ(prometheus.query("acctlock_spray_suspected_total"), "0");
  EXPECT_EQ(prometheus.query("acctlock_evicted_sources_total"), "0");
  EXPECT_EQ(prometheus.query("acctlock_history_aggregated_events_total"), "0");
  const char* const users[] = {"daemon", "bin", "sys"};
  for (int i = 0; i < 120; ++i) {
    daemon_.request(MessageType::failure, users[i % 3], "login",
                    "198.51.100." + std::to_string(i % 20));
  }
  EXPECT_TRUE(
      eventually([&] { return prometheus.query("acctlock_spray_suspected_total") == "1"; }, 30s));
  EXPECT_TRUE(eventually(
      [&] { return prometheus.query("acctlock_evicted_sources_total > 0") != ""; }, 30s));
  EXPECT_TRUE(eventually(
      [&] { return prometheus.query("acctlock_history_aggregated_events_total > 0") != ""; }, 30s));
  EXPECT_TRUE(eventually(
      [&] { return prometheus.query("acctlock_auth_failures_total{service=\"login\"}") == "120"; },
      30s));
  const std::string page = body_of(get(port_));
  EXPECT_THAT(page, Not(HasSubstr("198.51.100.")));
}

// The alert rules in docs/monitoring.md, as an operator would copy them.
TEST(MonitoringDocs, TheAlertRulesPassPromtool) {
  const std::string doc = read_file(ACCTLOCK_SOURCE_DIR "/docs/monitoring.md");
  const std::string start = "```yaml\ngroups:";
  const auto begin = doc.find(start);
  ASSERT_NE(begin, std::string::npos) << "no rules block in docs/monitoring.md";
  const auto end = doc.find("```\n", begin + 8);
  ASSERT_NE(end, std::string::npos);
  TempDir dir;
  const std::string rules = dir / "acctlock-rules.yml";
  write_file(rules, doc.substr(begin + 8, end - begin - 8));
  const CommandResult check = run_command({"/usr/bin/promtool", "check", "rules", rules});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("SUCCESS: 3 rules found"));
}

}  // namespace
}  // namespace acctlock::test
