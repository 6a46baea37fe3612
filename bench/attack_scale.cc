// SPDX-License-Identifier: BSD-3-Clause
// attack_scale: acctlockd at a million tracked users and ten million history
// rows, measured the way an attack would load it (issue 10).
//
//   attack_scale fill DATABASE USERS HISTORY
//     fills DATABASE with the daemon's own store code (SqliteStore): USERS
//     users each remembering one past lockout (so that none is idle), 1000 of
//     them locked, and HISTORY rows over the last 29 days plus a tenth as
//     many past a 30-day retention, for pruning to remove.
//   attack_scale run ACCTLOCKD DIR SPRAY USERS
//     starts ACCTLOCKD on DIR/acctlock.db (config DIR/acctlock.conf, written
//     by bench/run-attack-scale) and, while a legitimate user's `check` runs
//     back to back on its own connection, goes through: start-up, admin
//     commands, a reload that prunes, a spray of SPRAY names (failures from
//     root), and the sweep after it. Prints each phase's figures and the
//     check latency during it. The sweep phase ends when a pass after the
//     spray leaves USERS (the filled users) tracked.
//
// bench/run-attack-scale does both in a temp dir under /var/tmp and deletes
// it afterwards. See docs/performance.md.
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
#include "daemon/store/sqlite/sqlite_store.h"

namespace {

using namespace acctlock;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string user_name(std::int64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "u%07lld", static_cast<long long>(i));
  return name;
}

int fill(const std::string& path, std::int64_t users, std::int64_t history) {
  const auto start = Clock::now();
  auto store = SqliteStore::open(path);
  const TimePoint now = wall_clock_now();
  constexpr std::int64_t kBatch = 50000;
  for (std::int64_t i = 0; i < users; i += kBatch) {
    StoreBatch batch;
    for (std::int64_t j = i; j < std::min(users, i + kBatch); ++j) {
      UserState state;
      state.level = 1;
      state.last_lock_end = now - Seconds(3600);
      if (j % 1000 == 0) {
        state.failures = 3;
        state.last_failure = now - Seconds(60);
        state.failure_lock = FailureLock{now - Seconds(60), now + Seconds(30 * 86400)};
      }
      batch.put_states.emplace_back(user_name(j), state);
    }
    store->commit(batch);
  }
  std::fprintf(stderr, "fill: %lld users in %.1f s\n", static_cast<long long>(users),
               ms_since(start) / 1000);
  // History: `history` rows within 29 days, a tenth more past 30 days.
  const std::int64_t expired = history / 10;
  const std::int64_t total = history + expired;
  const char* sources[] = {"192.0.2.7", "198.51.100.4", "203.0.113.9", ""};
  for (std::int64_t i = 0; i < total; i += kBatch) {
    StoreBatch batch;
    for (std::int64_t j = i; j < std::min(total, i + kBatch); ++j) {
      HistoryEntry entry;
      const bool old = j < expired;
      const std::int64_t span = old ? 20 * 86400 : 29 * 86400;
      const std::int64_t age = (j * 7919) % span + (old ? 31 * 86400 : 0);
      entry.time = now - Seconds(age);
      entry.user = user_name((j * 104729) % users);
      entry.event = j % 5 == 0 ? HistoryEvent::success : HistoryEvent::failure;
      entry.service = "sshd";
      entry.rhost = sources[j % 4];
      entry.tty = "ssh";
      batch.history.push_back(std::move(entry));
    }
    store->commit(batch);
    if ((i / kBatch) % 40 == 0) {
      std::fprintf(stderr, "fill: %lld/%lld history rows, %.0f s\n", static_cast<long long>(i),
                   static_cast<long long>(total), ms_since(start) / 1000);
    }
  }
  std::fprintf(stderr, "fill: done in %.1f s\n", ms_since(start) / 1000);
  return 0;
}

// --- the running daemon --------------------------------------------------

struct Latencies {
  std::mutex mutex;
  std::vector<double> samples;
  std::size_t failed = 0;
};

std::atomic<bool> g_stop_checks{false};

void check_loop(const std::string& socket, Latencies& latencies) {
  EventClient client;
  protocol::Request request{protocol::MessageType::check, false, 0, "u0000001", "sshd", "", "", ""};
  while (!g_stop_checks) {
    request.event_id = new_event_id();
    protocol::Answer answer;
    const auto start = Clock::now();
    const auto status = client.exchange(socket, request, answer, std::chrono::seconds(30));
    const double took = ms_since(start);
    {
      std::lock_guard lock(latencies.mutex);
      if (status == ClientStatus::ok) {
        latencies.samples.push_back(took);
      } else {
        ++latencies.failed;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string check_figures(Latencies& latencies) {
  std::vector<double> samples;
  std::size_t failed;
  {
    std::lock_guard lock(latencies.mutex);
    samples.swap(latencies.samples);
    failed = latencies.failed;
    latencies.failed = 0;
  }
  if (samples.empty()) return "no checks";
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double p) {
    return samples[static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1))];
  };
  char text[160];
  std::snprintf(text, sizeof text, "checks %zu: p50 %.2f ms, p99 %.2f ms, max %.1f ms%s",
                samples.size(), at(0.5), at(0.99), samples.back(), failed ? " (SOME FAILED)" : "");
  return text;
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

long rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Bytes of the database in use: pages minus free pages (the file itself
// keeps its size; SQLite reuses free pages).
long long disk_in_use(const std::string& database) {
  const std::string command = "sqlite3 -readonly '" + database +
                              "' 'PRAGMA page_count; PRAGMA freelist_count; PRAGMA page_size;'";
  FILE* pipe = popen(command.c_str(), "r");
  long long pages = 0, free_pages = 0, page_size = 0;
  if (pipe == nullptr ||
      std::fscanf(pipe, "%lld %lld %lld", &pages, &free_pages, &page_size) != 3) {
    if (pipe) pclose(pipe);
    return -1;
  }
  pclose(pipe);
  return (pages - free_pages) * page_size;
}

bool wait_for_log(const std::string& log, const std::string& text, int seconds,
                  std::size_t from = 0) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    if (read_file(log).find(text, from) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int run(const std::string& daemon_path, const std::string& dir, std::int64_t spray,
        std::int64_t filled_users) {
  const std::string config = dir + "/acctlock.conf";
  const std::string database = dir + "/acctlock.db";
  const std::string event_socket = dir + "/event.sock";
  const std::string admin_socket = dir + "/admin.sock";
  const std::string log = dir + "/daemon.log";
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

  const auto started = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(out, 2);
    execl(daemon_path.c_str(), daemon_path.c_str(), "--config", config.c_str(),
          "--log-target=stderr", static_cast<char*>(nullptr));
    _exit(127);
  }
  // READY=1, as systemd would see it.
  for (;;) {
    pollfd poll_fd{notify, POLLIN, 0};
    if (poll(&poll_fd, 1, 60000) <= 0) {
      std::fprintf(stderr, "no READY=1 in 60 s\n%s", read_file(log).c_str());
      kill(pid, SIGKILL);
      return 1;
    }
    char message[4096];
    const ssize_t n = recv(notify, message, sizeof message - 1, 0);
    if (n > 0 &&
        std::string(message, static_cast<std::size_t>(n)).find("READY=1") != std::string::npos) {
      break;
    }
  }
  const double ready_ms = ms_since(started);
  std::printf("start-up to READY=1: %.2f s\n", ready_ms / 1000);
  std::printf("RSS after start-up: %.0f MB\n", static_cast<double>(rss_kb(pid)) / 1024);
  std::fflush(stdout);

  Latencies latencies;
  std::thread checker([&] { check_loop(event_socket, latencies); });
  const auto phase = [&](const char* name, auto body) {
    check_figures(latencies);  // drop what came before
    const auto start = Clock::now();
    const std::string result = body();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::printf("%-28s %-44s | %s\n", name, result.c_str(), check_figures(latencies).c_str());
    std::fflush(stdout);
    (void)start;
  };

  phase("idle (3 s)", [&] {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    return std::string();
  });

  AdminConnection admin(admin_socket);
  const auto timed = [&](const json& request, double& took) {
    const auto start = Clock::now();
    json answer = admin.request(request);
    took = ms_since(start);
    return answer;
  };

  phase("list, every page", [&] {
    double longest = 0, total = 0, took = 0;
    std::size_t users = 0, pages = 0;
    json after = "";
    while (after.is_string()) {
      const json answer =
          timed({{"command", "list"}, {"arguments", {{"limit", 1000}, {"after", after}}}}, took);
      longest = std::max(longest, took);
      total += took;
      users += answer["arguments"]["users"].size();
      ++pages;
      after = answer["arguments"]["next"];
    }
    char text[160];
    std::snprintf(text, sizeof text, "%zu users, %zu pages, %.1f s, page max %.0f ms", users, pages,
                  total / 1000, longest);
    return std::string(text);
  });
  phase("list --locked (first page)", [&] {
    double took = 0;
    const json answer =
        timed({{"command", "list"}, {"arguments", {{"locked", true}, {"limit", 1000}}}}, took);
    char text[128];
    std::snprintf(text, sizeof text, "%zu users, %.0f ms", answer["arguments"]["users"].size(),
                  took);
    return std::string(text);
  });
  phase("stats", [&] {
    double took = 0;
    const json answer = timed({{"command", "stats"}}, took);
    char text[128];
    std::snprintf(text, sizeof text, "%.0f ms (failures last day %s)", took,
                  answer["arguments"]["failures_last_day"].dump().c_str());
    return std::string(text);
  });
  phase("history u0000001", [&] {
    double took = 0;
    const json answer = timed(
        {{"command", "history"}, {"arguments", {{"user", "u0000001"}, {"limit", 100}}}}, took);
    char text[128];
    std::snprintf(text, sizeof text, "%zu rows, %.0f ms", answer["arguments"]["entries"].size(),
                  took);
    return std::string(text);
  });
  phase("reload + prune", [&] {
    // The start-up prune ran already; a retention of 28 days removes the
    // rows 28 to 29 days old.
    const std::size_t from = read_file(log).size();
    std::ofstream(config, std::ios::app) << "history_retention = 28d\n";
    const auto start = Clock::now();
    kill(pid, SIGHUP);
    const bool done = wait_for_log(log, "past retention", 300, from);
    char text[128];
    std::snprintf(text, sizeof text, "%s in %.1f s", done ? "pruned" : "NOT pruned",
                  ms_since(start) / 1000);
    return std::string(text);
  });

  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long rss_before = rss_kb(pid);
  const long long disk_before = disk_in_use(database);
  std::printf("before the spray: RSS %.0f MB, database in use %.0f MB\n",
              static_cast<double>(rss_before) / 1024, static_cast<double>(disk_before) / 1e6);

  phase("spray", [&] {
    constexpr int kClients = 8;
    std::atomic<std::int64_t> next{0};
    std::atomic<std::int64_t> failed{0};
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        EventClient client;
        for (;;) {
          const std::int64_t i = next++;
          if (i >= spray) return;
          protocol::Request request{protocol::MessageType::failure, false, new_event_id(),
                                    "s" + std::to_string(i), "sshd", "203.0.113.66", "", ""};
          protocol::Answer answer;
          if (client.exchange(event_socket, request, answer, std::chrono::seconds(30)) !=
              ClientStatus::ok) {
            ++failed;
          }
        }
      });
    }
    for (auto& client : clients) client.join();
    const double seconds = ms_since(start) / 1000;
    char text[160];
    std::snprintf(text, sizeof text, "%lld names in %.0f s (%.0f/s), RSS %.0f MB",
                  static_cast<long long>(spray), seconds, static_cast<double>(spray) / seconds,
                  static_cast<double>(rss_kb(pid)) / 1024);
    return std::string(text);
  });

  const std::size_t spray_end = read_file(log).size();
  phase("sweep after the spray", [&] {
    const auto start = Clock::now();
    // fail_interval is 30 s in the bench's config; the sweep then runs every
    // 7.5 s in slices.
    const auto deadline = Clock::now() + std::chrono::seconds(300);
    std::string last;
    while (Clock::now() < deadline) {
      // Only the passes after the spray, until the filled users alone are left.
      const std::string text = read_file(log);
      const auto at = text.rfind(" tracked\n");
      if (at != std::string::npos && at > spray_end &&
          text.rfind("idle user(s); ", at) != std::string::npos) {
        const auto begin = text.rfind("; ", at);
        last = text.substr(begin + 2, at - begin - 2);
        if (std::atoll(last.c_str()) <= filled_users) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    char text[160];
    std::snprintf(text, sizeof text, "%s tracked after %.0f s", last.c_str(),
                  ms_since(start) / 1000);
    return std::string(text);
  });
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const long rss_after = rss_kb(pid);
  const long long disk_after = disk_in_use(database);
  std::printf(
      "after the sweep: RSS %.0f MB (%+.1f %%), database in use %.0f MB (%+.1f %%)\n",
      static_cast<double>(rss_after) / 1024,
      100.0 * static_cast<double>(rss_after - rss_before) / static_cast<double>(rss_before),
      static_cast<double>(disk_after) / 1e6,
      100.0 * static_cast<double>(disk_after - disk_before) / static_cast<double>(disk_before));
  const std::string states = "sqlite3 -readonly '" + database +
                             "' \"SELECT 'user_state pages in use: ' || sum(pgsize) / 1000000 || "
                             "' MB' FROM dbstat WHERE name = 'user_state'\"";
  std::fflush(stdout);
  if (std::system(states.c_str()) != 0) std::printf("(dbstat not available)\n");

  g_stop_checks = true;
  checker.join();
  const auto stop_start = Clock::now();
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::printf("stop: %.1f s, exit %d\n", ms_since(stop_start) / 1000,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  // A second start after that clean stop: no whole-file check.
  {
    char stale[4096];
    while (recv(notify, stale, sizeof stale, MSG_DONTWAIT) > 0) {
    }
    const auto again = Clock::now();
    const pid_t second = fork();
    if (second == 0) {
      setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
      const int out = open((log + ".2").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      dup2(out, 2);
      execl(daemon_path.c_str(), daemon_path.c_str(), "--config", config.c_str(),
            "--log-target=stderr", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (;;) {
      pollfd poll_fd{notify, POLLIN, 0};
      if (poll(&poll_fd, 1, 60000) <= 0) break;
      char message[4096];
      const ssize_t n = recv(notify, message, sizeof message - 1, 0);
      if (n > 0 &&
          std::string(message, static_cast<std::size_t>(n)).find("READY=1") != std::string::npos) {
        break;
      }
    }
    std::printf("second start-up to READY=1: %.2f s, RSS %.0f MB\n", ms_since(again) / 1000,
                static_cast<double>(rss_kb(second)) / 1024);
    kill(second, SIGTERM);
    waitpid(second, &status, 0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "fill" && argc == 5) return fill(argv[2], std::atoll(argv[3]), std::atoll(argv[4]));
  if (mode == "run" && argc == 6) {
    return run(argv[2], argv[3], std::atoll(argv[4]), std::atoll(argv[5]));
  }
  std::fprintf(stderr,
               "usage: attack_scale fill DATABASE USERS HISTORY\n"
               "       attack_scale run ACCTLOCKD DIR SPRAY USERS\n");
  return 2;
}
