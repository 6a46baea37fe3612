// SPDX-License-Identifier: BSD-3-Clause
// source_flood: acctlockd under a flood of failed logins from distinct
// sources (issue 11), through the event socket as sshd's module sends them.
//
//   source_flood ACCTLOCKD DIR COUNT [ROUNDS]
//     starts ACCTLOCKD with DIR/acctlock.conf (written by
//     bench/run-source-flood), locks one user, then alternates ROUNDS times
//     (default 4) an idle phase of 3 s and a flood of COUNT/ROUNDS failures,
//     while a legitimate `check` (user and address of its own) runs back to
//     back on its own connection. Each phase prints the check's p50/p99/max,
//     the daemon's RSS, the database pages in use, and the sources tracked
//     and blocked. At the end: the locked user is still locked.
//
// The flood's failures are for names NSS does not know (flagged unknown, as
// pam_acctlock sends them), each from a source of one of four kinds, in turn:
//   - a new IPv4 address (10.0.0.0/8 and up),
//   - a new IPv6 /64 (2001:db8:X:Y::1),
//   - a new address inside one of 256 IPv6 /64s (2001:db8:ffff:Z::/64):
//     with source_prefix_v6 = 64 these are 256 sources, blocked at once,
//   - another new IPv4 address (172.16.0.0/12 and up, wrapping).
// So three in four failures come from a source never seen before: the table
// (max_tracked_sources) fills and evicts, which is what the bound is about.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/event_client.h"
#include "common/event_id.h"

namespace {

using namespace acctlock;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

long rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Bytes of the database in use: pages minus free pages (SQLite keeps the
// file's size and reuses free pages), and the file with its WAL.
std::string disk_figures(const std::string& database) {
  const std::string command = "sqlite3 -readonly '" + database +
                              "' 'PRAGMA page_count; PRAGMA freelist_count; PRAGMA page_size;'";
  FILE* pipe = popen(command.c_str(), "r");
  long long pages = 0, free_pages = 0, page_size = 0;
  const bool read =
      pipe != nullptr && std::fscanf(pipe, "%lld %lld %lld", &pages, &free_pages, &page_size) == 3;
  if (pipe) pclose(pipe);
  std::ifstream file(database, std::ios::ate | std::ios::binary);
  std::ifstream wal(database + "-wal", std::ios::ate | std::ios::binary);
  const double file_mb = static_cast<double>(file.tellg()) / 1e6;
  const double wal_mb = wal ? static_cast<double>(wal.tellg()) / 1e6 : 0.0;
  char text[128];
  std::snprintf(text, sizeof text, "db in use %.1f MB (file %.1f MB, wal %.1f MB)",
                read ? static_cast<double>((pages - free_pages) * page_size) / 1e6 : -1.0, file_mb,
                wal_mb);
  return text;
}

struct Latencies {
  std::mutex mutex;
  std::vector<double> samples;
  std::size_t failed = 0;
};

std::atomic<bool> g_stop_checks{false};

// A legitimate user's check from an address of its own, back to back.
void check_loop(const std::string& socket, Latencies& latencies) {
  EventClient client;
  protocol::Request request{
      protocol::MessageType::check, false, 0, "root", "sshd", "198.51.100.10", "ssh", ""};
  while (!g_stop_checks) {
    request.event_id = new_event_id();
    protocol::Answer answer;
    const auto start = Clock::now();
    const auto status = client.exchange(socket, request, answer, std::chrono::seconds(30));
    const double took = ms_since(start);
    {
      std::lock_guard lock(latencies.mutex);
      if (status == ClientStatus::ok && answer.verdict == protocol::Verdict::allowed) {
        latencies.samples.push_back(took);
      } else {
        ++latencies.failed;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

struct CheckFigures {
  std::size_t count = 0;
  double p50 = 0, p99 = 0, max = 0;
  std::size_t failed = 0;
};

CheckFigures take_figures(Latencies& latencies) {
  CheckFigures figures;
  std::vector<double> samples;
  {
    std::lock_guard lock(latencies.mutex);
    samples.swap(latencies.samples);
    figures.failed = latencies.failed;
    latencies.failed = 0;
  }
  if (samples.empty()) return figures;
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double p) {
    return samples[static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1))];
  };
  figures.count = samples.size();
  figures.p50 = at(0.5);
  figures.p99 = at(0.99);
  figures.max = samples.back();
  return figures;
}

class AdminConnection {
 public:
  explicit AdminConnection(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      std::perror("admin connect");
      std::exit(1);
    }
  }
  ~AdminConnection() { close(fd_); }
  AdminConnection(const AdminConnection&) = delete;
  AdminConnection& operator=(const AdminConnection&) = delete;

  json request(const json& request) {
    const std::string line = request.dump() + "\n";
    if (send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
      std::perror("admin send");
      std::exit(1);
    }
    for (;;) {
      if (const auto end = pending_.find('\n'); end != std::string::npos) {
        json answer = json::parse(pending_.substr(0, end));
        pending_.erase(0, end + 1);
        return answer;
      }
      char chunk[65536];
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        std::fprintf(stderr, "admin socket closed\n");
        std::exit(1);
      }
      pending_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string pending_;
};

// Sources tracked and blocked, counted by walking `sources` page by page,
// on a connection of its own (the daemon closes idle admin connections).
std::pair<std::size_t, std::size_t> count_sources(const std::string& admin_socket) {
  AdminConnection admin(admin_socket);
  std::size_t tracked = 0, blocked = 0;
  json after = "";
  while (after.is_string()) {
    const json answer =
        admin.request({{"command", "sources"}, {"arguments", {{"limit", 1000}, {"after", after}}}});
    for (const json& row : answer["arguments"]["sources"]) {
      ++tracked;
      if (row.value("blocked", false)) ++blocked;
    }
    after = answer["arguments"]["next"];
  }
  return {tracked, blocked};
}

// The source of flood failure `i` (see the top of the file).
std::string flood_source(std::uint64_t i) {
  char text[64];
  const std::uint64_t n = i / 4;
  switch (i % 4) {
    case 0:
      std::snprintf(text, sizeof text, "%llu.%llu.%llu.%llu",
                    static_cast<unsigned long long>(10 + (n >> 24) % 10),
                    static_cast<unsigned long long>((n >> 16) & 0xff),
                    static_cast<unsigned long long>((n >> 8) & 0xff),
                    static_cast<unsigned long long>(n & 0xff));
      break;
    case 1:
      std::snprintf(text, sizeof text, "2001:db8:%llx:%llx::1",
                    static_cast<unsigned long long>((n >> 16) & 0xfffe),
                    static_cast<unsigned long long>(n & 0xffff));
      break;
    case 2:
      std::snprintf(text, sizeof text, "2001:db8:ffff:%llx:%llx:%llx::1",
                    static_cast<unsigned long long>(n & 0xff),
                    static_cast<unsigned long long>((n >> 8) & 0xffff),
                    static_cast<unsigned long long>((n >> 24) & 0xffff));
      break;
    default:
      std::snprintf(text, sizeof text, "172.%llu.%llu.%llu",
                    static_cast<unsigned long long>(16 + (n >> 16) % 16),
                    static_cast<unsigned long long>((n >> 8) & 0xff),
                    static_cast<unsigned long long>(n & 0xff));
      break;
  }
  return text;
}

pid_t start_daemon(const std::string& daemon_path, const std::string& dir, int notify) {
  const std::string config = dir + "/acctlock.conf";
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("NOTIFY_SOCKET", (dir + "/notify.sock").c_str(), 1);
    const int out =
        open((dir + "/daemon.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(out, 2);
    execl(daemon_path.c_str(), daemon_path.c_str(), "--config", config.c_str(),
          "--log-target=stderr", static_cast<char*>(nullptr));
    _exit(127);
  }
  for (;;) {
    pollfd poll_fd{notify, POLLIN, 0};
    if (poll(&poll_fd, 1, 60000) <= 0) {
      std::fprintf(stderr, "no READY=1 in 60 s\n%s", read_file(dir + "/daemon.log").c_str());
      kill(pid, SIGKILL);
      std::exit(1);
    }
    char message[4096];
    const ssize_t n = recv(notify, message, sizeof message - 1, 0);
    if (n > 0 &&
        std::string(message, static_cast<std::size_t>(n)).find("READY=1") != std::string::npos) {
      return pid;
    }
  }
}

protocol::Answer send_one(const std::string& socket, protocol::MessageType type,
                          const std::string& user, const std::string& rhost, bool unknown) {
  EventClient client;
  protocol::Request request{type, false, new_event_id(), user, "sshd", rhost, "ssh", ""};
  request.user_unknown = unknown;
  protocol::Answer answer;
  if (client.exchange(socket, request, answer, std::chrono::seconds(30)) != ClientStatus::ok) {
    std::fprintf(stderr, "request for %s failed\n", user.c_str());
    std::exit(1);
  }
  return answer;
}

int run(const std::string& daemon_path, const std::string& dir, std::uint64_t count, int rounds) {
  const std::string database = dir + "/acctlock.db";
  const std::string event_socket = dir + "/event.sock";
  const std::string notify_path = dir + "/notify.sock";
  const int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, notify_path.c_str(), sizeof address.sun_path - 1);
  unlink(notify_path.c_str());
  if (bind(notify, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("bind notify");
    return 1;
  }
  const pid_t pid = start_daemon(daemon_path, dir, notify);
  const std::string admin_socket = dir + "/admin.sock";

  // A user's lock, which no number of sources may evict: `deny` failures of
  // a real account ("daemon" exists on every Debian system) from no address.
  for (int i = 0; i < 3; ++i)
    send_one(event_socket, protocol::MessageType::failure, "daemon", "", false);
  if (send_one(event_socket, protocol::MessageType::check, "daemon", "", false).verdict !=
      protocol::Verdict::locked) {
    std::fprintf(stderr, "the user lock did not take\n");
    return 1;
  }
  std::printf("started; RSS %.1f MB; %s\n", static_cast<double>(rss_kb(pid)) / 1024,
              disk_figures(database).c_str());
  std::printf("%-22s | %-9s %-9s %-9s %-7s | %-8s | %-52s | %s\n", "phase", "check p50", "p99",
              "max", "checks", "RSS", "disk", "sources tracked / blocked");
  std::fflush(stdout);

  Latencies latencies;
  std::thread checker([&] { check_loop(event_socket, latencies); });
  std::vector<double> idle_p50, flood_p50, idle_p99, flood_p99;
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> failed{0};
  const auto report = [&](const std::string& name, const CheckFigures& figures) {
    const auto [tracked, blocked] = count_sources(admin_socket);
    std::printf("%-22s | %6.2f ms %6.2f ms %6.1f ms %7zu | %5.1f MB | %-52s | %zu / %zu%s\n",
                name.c_str(), figures.p50, figures.p99, figures.max, figures.count,
                static_cast<double>(rss_kb(pid)) / 1024, disk_figures(database).c_str(), tracked,
                blocked, figures.failed ? " (SOME CHECKS FAILED)" : "");
    std::fflush(stdout);
  };

  for (int round = 1; round <= rounds; ++round) {
    take_figures(latencies);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const CheckFigures idle = take_figures(latencies);
    idle_p50.push_back(idle.p50);
    idle_p99.push_back(idle.p99);
    report("idle " + std::to_string(round) + " (3 s)", idle);

    const std::uint64_t end =
        count * static_cast<std::uint64_t>(round) / static_cast<std::uint64_t>(rounds);
    const std::uint64_t begin = next.load();
    constexpr int kClients = 8;
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        EventClient client;
        for (;;) {
          const std::uint64_t i = next++;
          if (i >= end) return;
          protocol::Request request{protocol::MessageType::failure,
                                    false,
                                    new_event_id(),
                                    "n" + std::to_string(i),
                                    "sshd",
                                    flood_source(i),
                                    "ssh",
                                    ""};
          request.user_unknown = true;
          protocol::Answer answer;
          if (client.exchange(event_socket, request, answer, std::chrono::seconds(30)) !=
              ClientStatus::ok) {
            ++failed;
          }
        }
      });
    }
    for (auto& client : clients) client.join();
    next = end;
    const double seconds = ms_since(start) / 1000;
    const CheckFigures flood = take_figures(latencies);
    flood_p50.push_back(flood.p50);
    flood_p99.push_back(flood.p99);
    char name[64];
    std::snprintf(name, sizeof name, "flood to %lluk (%.0f/s)",
                  static_cast<unsigned long long>(end / 1000),
                  static_cast<double>(end - begin) / seconds);
    report(name, flood);
  }
  g_stop_checks = true;
  checker.join();

  const auto median = [](std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0.0 : values[values.size() / 2];
  };
  const double idle50 = median(idle_p50), flood50 = median(flood_p50);
  const double idle99 = median(idle_p99), flood99 = median(flood_p99);
  std::printf(
      "medians over %d rounds: check p50 idle %.2f ms, flood %.2f ms (x%.1f); "
      "p99 idle %.2f ms, flood %.2f ms (x%.1f)\n",
      rounds, idle50, flood50, idle50 > 0 ? flood50 / idle50 : 0.0, idle99, flood99,
      idle99 > 0 ? flood99 / idle99 : 0.0);
  std::printf("failed flood requests: %llu\n", static_cast<unsigned long long>(failed.load()));
  const bool still_locked =
      send_one(event_socket, protocol::MessageType::check, "daemon", "", false).verdict ==
      protocol::Verdict::locked;
  std::printf("the user locked before the flood is %s\n",
              still_locked ? "still locked" : "NO LONGER LOCKED");
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return still_locked ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 || argc == 5) {
    const int rounds = argc == 5 ? std::atoi(argv[4]) : 4;
    if (rounds < 1) return 2;
    return run(argv[1], argv[2], std::strtoull(argv[3], nullptr, 10), rounds);
  }
  std::fprintf(stderr, "usage: source_flood ACCTLOCKD DIR COUNT [ROUNDS]\n");
  return 2;
}
