// SPDX-License-Identifier: BSD-3-Clause
// fleet: eight acctlockd sharing one PostgreSQL (issue 15), on one machine:
// events per second and answer latency for the fleet against one host on the
// same server and one SQLite host, how long a lock takes to be seen by every
// host, and a check's latency on one host while the others take a flood.
//
//   fleet [--rounds 10] [--seconds 2] [--clients 32] [--trials 10] [--poll-gap-us 0]
//
// Starts a private PostgreSQL server (tests/support/postgres_server.h:
// initdb, the postmaster as nobody, a Unix socket in a temp dir only) with
// two databases, then ten daemons (tests/support/daemon_process.h), each
// with its own sockets: bench-0 .. bench-7 share the first database (the
// fleet), bench-solo has the second to itself, and one daemon keeps SQLite.
// All run with deny = 3, unlock_time = 0 and source_deny = 0 (the clients'
// addresses never block). Each round runs, interleaved:
//
//  1. throughput, for each of the three set-ups in turn (the order flips
//     every round): --clients threads, each a client with a connection of
//     its own, spread over the set-up's event sockets, for --seconds:
//       failures  a failure each, two per user, then the next user (so no
//                 user locks; every name is new to the fleet);
//       logins    a login each, as pam_acctlock makes it: a check, then a
//                 failure (even logins) or a success (odd), two per user.
//     Events per second over the set-up, and the p50/p99 of the answers.
//     Every answer is checked: `allowed`, and the failures it counts are the
//     client's own so far. After each fleet failures phase the database's
//     user_state and history must hold each answered failure exactly once.
//  2. propagation, --trials times each: an admin lock over bench-0's admin
//     socket (the admin protocol, as `acctlock lock` sends it), timed from
//     just before the request until each of bench-1 .. bench-7 answers
//     `locked` to a check (one thread per host, polling its event socket
//     back to back, or --poll-gap-us apart); then the unlock, until each answers `allowed`; then a
//     new user's deny = 3 failures on bench-1, bench-2 and bench-3 (each
//     answered before the next), timed from the third until bench-0 and
//     bench-4 .. bench-7, which saw none, answer `locked`.
//  3. a check on bench-0 back to back (1 ms apart) for --seconds, idle, and
//     while --clients clients send failures to bench-1 .. bench-7; then,
//     with the flood still on, --trials / 2 lock/unlock propagations.
//
// At the end: medians over rounds, the propagation times over all trials,
// whether every host's memory agrees with the database for a sample of
// users, and every warning or error in the daemons' logs.
// bench/run-fleet builds nothing; it runs this from a build directory.
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/event_client.h"
#include "common/event_id.h"
#include "tests/support/daemon_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/temp_dir.h"

namespace {

using namespace acctlock;
using acctlock::test::DaemonProcess;
using acctlock::test::PostgresServer;
using acctlock::test::TempDir;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using protocol::MessageType;
using protocol::Verdict;

constexpr int kHosts = 8;
// A propagation not seen within this counts as never seen.
constexpr auto kGiveUp = std::chrono::seconds(10);
constexpr auto kRequestTimeout = std::chrono::seconds(30);

struct Settings {
  int rounds = 10;
  double seconds = 2;
  int clients = 32;
  int trials = 10;
  int poll_gap_us = 0;  // between one poller's checks; 0: back to back
};

bool parse(int argc, char** argv, Settings& settings) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--rounds") {
      settings.rounds = std::atoi(value);
    } else if (flag == "--seconds") {
      settings.seconds = std::atof(value);
    } else if (flag == "--clients") {
      settings.clients = std::atoi(value);
    } else if (flag == "--trials") {
      settings.trials = std::atoi(value);
    } else if (flag == "--poll-gap-us") {
      settings.poll_gap_us = std::atoi(value);
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && settings.rounds > 0 && settings.seconds > 0 && settings.clients > 0 &&
         settings.trials > 0 && settings.poll_gap_us >= 0;
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string loadavg() {
  std::string text = acctlock::test::read_file("/proc/loadavg");
  std::istringstream in(text);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1))];
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The first thing that went wrong, from any thread. die() throws, so that
// the main thread's unwinding stops the daemons and the server by their
// pids; a client thread records it (guarded) and every loop stops.
std::atomic<bool> g_failed{false};
std::mutex g_failure_mutex;
std::string g_failure;

[[noreturn]] void die(const std::string& why) {
  {
    std::lock_guard lock(g_failure_mutex);
    if (g_failure.empty()) g_failure = why;
  }
  g_failed = true;
  throw std::runtime_error(why);
}

// A thread's body: what it throws is recorded and ends the run.
template <typename Body>
auto guarded(Body body) {
  return [body = std::move(body)]() mutable {
    try {
      body();
    } catch (const std::exception& e) {
      std::lock_guard lock(g_failure_mutex);
      if (g_failure.empty()) g_failure = e.what();
      g_failed = true;
    }
  };
}

// Hosts that answered a trial's target state before the change was made.
std::atomic<int> g_inconsistent{0};

// After joining threads: their failure is the run's.
void rethrow_failure() {
  if (!g_failed) return;
  std::lock_guard lock(g_failure_mutex);
  throw std::runtime_error(g_failure);
}

// One request; a transport error stops the bench.
protocol::Answer exchange(EventClient& client, const std::string& socket, MessageType type,
                          const std::string& user, const std::string& rhost = "") {
  protocol::Request request{type, false, new_event_id(), user, "sshd", rhost, "ssh", ""};
  protocol::Answer answer;
  const ClientStatus status = client.exchange(socket, request, answer, kRequestTimeout);
  if (status != ClientStatus::ok)
    die(std::string("request to ") + socket + ": " + describe(status));
  return answer;
}

// The admin protocol: one JSON object a line each way.
json admin_request(const std::string& path, const json& request) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    die("admin connect " + path + ": " + std::strerror(errno));
  }
  const std::string line = request.dump() + "\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    die("admin send: " + std::string(std::strerror(errno)));
  }
  std::string pending;
  for (;;) {
    if (const auto end = pending.find('\n'); end != std::string::npos) {
      close(fd);
      return json::parse(pending.substr(0, end));
    }
    char chunk[4096];
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) die("admin socket closed before the answer");
    pending.append(chunk, static_cast<std::size_t>(n));
  }
}

struct Host {
  std::string name;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<DaemonProcess> daemon;
};

std::unique_ptr<Host> start_host(const std::string& name, const std::string& store_config) {
  auto host = std::make_unique<Host>();
  host->name = name;
  host->dir = std::make_unique<TempDir>();
  host->daemon = std::make_unique<DaemonProcess>(
      *host->dir, "deny = 3\nunlock_time = 0\nsource_deny = 0\n" + store_config);
  if (!host->daemon->start()) die(name + " did not start:\n" + host->daemon->log());
  return host;
}

// ---- 1. throughput --------------------------------------------------------

enum class Workload { failures, logins };

struct Throughput {
  double events_per_second = 0;
  double p50 = 0, p99 = 0;              // every answer
  double check_p50 = 0, check_p99 = 0;  // logins: the checks alone
  std::uint64_t failures_answered = 0;
  std::uint64_t wrong_answers = 0;
};

struct ClientTally {
  std::vector<double> all;
  std::vector<double> checks;
  std::uint64_t failures = 0;
  std::uint64_t wrong = 0;
};

// Client `c` of a phase, on `socket`, until `end`. Its users are
// PREFIX + "c" + c + "u" + n: no other client names them.
void run_client(const std::string& socket, const std::string& prefix, int c, Workload workload,
                Clock::time_point end, ClientTally& tally) {
  EventClient client;
  const std::string rhost = "198.51.100." + std::to_string(c % 250 + 1);
  const auto timed = [&](MessageType type, const std::string& user, std::vector<double>* also) {
    const auto start = Clock::now();
    protocol::Answer answer = exchange(client, socket, type, user, rhost);
    const double took = ms_between(start, Clock::now());
    tally.all.push_back(took);
    if (also) also->push_back(took);
    return answer;
  };
  for (std::uint64_t i = 0; Clock::now() < end && !g_failed; ++i) {
    const std::string user = prefix + "c" + std::to_string(c) + "u" + std::to_string(i / 2);
    const std::uint32_t earlier = static_cast<std::uint32_t>(i % 2);
    if (workload == Workload::failures) {
      const protocol::Answer answer = timed(MessageType::failure, user, nullptr);
      ++tally.failures;
      if (answer.verdict != Verdict::allowed || answer.failures != earlier + 1) ++tally.wrong;
      continue;
    }
    // A login: the check, then its outcome. Even logins fail, odd ones
    // succeed (clearing the failure before them).
    const protocol::Answer check = timed(MessageType::check, user, &tally.checks);
    if (check.verdict != Verdict::allowed || check.failures != earlier) ++tally.wrong;
    if (i % 2 == 0) {
      const protocol::Answer answer = timed(MessageType::failure, user, nullptr);
      ++tally.failures;
      if (answer.verdict != Verdict::allowed || answer.failures != 1) ++tally.wrong;
    } else {
      const protocol::Answer answer = timed(MessageType::success, user, nullptr);
      if (answer.verdict != Verdict::allowed) ++tally.wrong;
    }
  }
}

Throughput run_throughput(const std::vector<std::string>& sockets, const std::string& prefix,
                          Workload workload, const Settings& settings) {
  std::vector<ClientTally> tallies(static_cast<std::size_t>(settings.clients));
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(settings.seconds));
  for (int c = 0; c < settings.clients; ++c) {
    ClientTally& tally = tallies[static_cast<std::size_t>(c)];
    const std::string& socket = sockets[static_cast<std::size_t>(c) % sockets.size()];
    clients.emplace_back(guarded([&socket, &prefix, c, workload, end, &tally] {
      run_client(socket, prefix, c, workload, end, tally);
    }));
  }
  for (auto& client : clients) client.join();
  rethrow_failure();
  const double seconds = ms_between(start, Clock::now()) / 1000;
  Throughput result;
  std::vector<double> all, checks;
  for (ClientTally& tally : tallies) {
    all.insert(all.end(), tally.all.begin(), tally.all.end());
    checks.insert(checks.end(), tally.checks.begin(), tally.checks.end());
    result.failures_answered += tally.failures;
    result.wrong_answers += tally.wrong;
  }
  std::sort(all.begin(), all.end());
  std::sort(checks.begin(), checks.end());
  result.events_per_second = static_cast<double>(all.size()) / seconds;
  result.p50 = percentile(all, 0.5);
  result.p99 = percentile(all, 0.99);
  result.check_p50 = percentile(checks, 0.5);
  result.check_p99 = percentile(checks, 0.99);
  return result;
}

// ---- 2. propagation -------------------------------------------------------

struct Propagation {
  std::vector<double> per_host;  // ms from the change until each host saw it
  double everywhere = 0;         // the slowest host's
  double answered = 0;           // ms until the changing request's answer
  int never = 0;                 // hosts that did not see it within kGiveUp
};

// Polls `user` on each of `sockets` (a thread each, `poll_gap` apart) until
// it answers `wanted`; `change` makes the change and returns, when its
// answer arrives, whether it took effect. Times from just before `change`;
// nothing when the change failed.
template <typename Change>
std::optional<Propagation> propagate(const std::vector<std::string>& sockets,
                                     const std::string& user, Verdict wanted,
                                     std::chrono::microseconds poll_gap, Change change) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> abandoned{false};
  std::vector<Clock::time_point> seen(sockets.size());
  std::vector<char> saw(sockets.size(), 0);  // one byte a thread: no shared words
  std::vector<std::thread> pollers;
  for (std::size_t h = 0; h < sockets.size(); ++h) {
    pollers.emplace_back(guarded([&, h] {
      EventClient client;
      // Connected, and not yet changed, before the clock starts. A host
      // that already answers `wanted` disagrees with the others (which just
      // answered the opposite): reported, and the trial is not measured.
      if (exchange(client, sockets[h], MessageType::check, user).verdict == wanted) {
        std::printf("  INCONSISTENT: %s already answers %s for %s before the change\n",
                    sockets[h].c_str(), wanted == Verdict::locked ? "locked" : "allowed",
                    user.c_str());
        ++g_inconsistent;
        abandoned = true;
      }
      ++ready;
      while (!go && !g_failed) std::this_thread::yield();
      const auto give_up = Clock::now() + kGiveUp;
      while (!g_failed && !abandoned) {
        if (poll_gap.count() > 0) std::this_thread::sleep_for(poll_gap);
        const auto answer = exchange(client, sockets[h], MessageType::check, user);
        const auto now = Clock::now();
        if (answer.verdict == wanted) {
          seen[h] = now;
          saw[h] = 1;
          return;
        }
        if (now > give_up) return;
      }
    }));
  }
  while (ready.load() < static_cast<int>(sockets.size()) && !g_failed) std::this_thread::yield();
  const auto start = Clock::now();
  go = true;
  Clock::time_point answered;
  try {
    if (abandoned || (!g_failed && !change())) abandoned = true;
    answered = Clock::now();
  } catch (...) {
    abandoned = true;
    for (auto& poller : pollers) poller.join();
    throw;
  }
  for (auto& poller : pollers) poller.join();
  rethrow_failure();
  if (abandoned) return std::nullopt;
  Propagation result;
  result.answered = ms_between(start, answered);
  for (std::size_t h = 0; h < sockets.size(); ++h) {
    const double took = saw[h] ? ms_between(start, seen[h])
                               : std::chrono::duration<double, std::milli>(kGiveUp).count();
    if (!saw[h]) ++result.never;
    result.per_host.push_back(took);
    result.everywhere = std::max(result.everywhere, took);
  }
  return result;
}

struct PropagationTally {
  std::vector<double> per_host, everywhere, answered;
  int never = 0;
  int trials = 0;
  int failed = 0;  // the change itself failed (an error answer)
  void add(const std::optional<Propagation>& maybe) {
    if (!maybe) {
      ++failed;
      return;
    }
    const Propagation& one = *maybe;
    per_host.insert(per_host.end(), one.per_host.begin(), one.per_host.end());
    everywhere.push_back(one.everywhere);
    answered.push_back(one.answered);
    never += one.never;
    ++trials;
  }
};

// Real accounts (the admin lock refuses a name NSS does not know): the first
// few non-root users of the system.
std::vector<std::string> lockable_users() {
  std::vector<std::string> users;
  setpwent();
  while (const passwd* entry = getpwent()) {
    if (entry->pw_uid != 0 && users.size() < 8) users.emplace_back(entry->pw_name);
  }
  endpwent();
  if (users.empty()) die("no non-root user in the passwd database to lock");
  return users;
}

// ---- 3. a check under a flood -----------------------------------------------

struct CheckLoop {
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<double> samples;
  std::uint64_t wrong = 0;
};

void check_loop(const std::string& socket, CheckLoop& loop) {
  EventClient client;
  while (!loop.stop && !g_failed) {
    const auto start = Clock::now();
    const auto answer =
        exchange(client, socket, MessageType::check, "fleetbench-watch", "203.0.113.7");
    const double took = ms_between(start, Clock::now());
    {
      std::lock_guard lock(loop.mutex);
      loop.samples.push_back(took);
      if (answer.verdict != Verdict::allowed) ++loop.wrong;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::vector<double> take_samples(CheckLoop& loop) {
  std::vector<double> samples;
  std::lock_guard lock(loop.mutex);
  samples.swap(loop.samples);
  return samples;
}

// Failures from `clients` threads over `sockets` until `stop`.
struct Flood {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0};
  std::vector<std::thread> threads;
  void start(const std::vector<std::string>& sockets, int clients, const std::string& prefix) {
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back(guarded([this, &sockets, c, prefix] {
        EventClient client;
        const std::string& socket = sockets[static_cast<std::size_t>(c) % sockets.size()];
        for (std::uint64_t i = 0; !stop && !g_failed; ++i) {
          exchange(client, socket, MessageType::failure,
                   prefix + "c" + std::to_string(c) + "u" + std::to_string(i / 2), "192.0.2.1");
          ++sent;
        }
      }));
    }
  }
  void finish() {
    stop = true;
    for (auto& thread : threads) thread.join();
    threads.clear();
  }
  ~Flood() { finish(); }
};

// ---- the run --------------------------------------------------------------

struct Setup {
  std::string name;
  std::vector<std::string> sockets;
  std::string database;  // PostgreSQL database to check counts in; "" for SQLite
};

std::string milliseconds(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

void print_distribution(const char* what, std::vector<double> values, int never) {
  std::sort(values.begin(), values.end());
  const double within =
      values.empty() ? 0
                     : 100.0 *
                           static_cast<double>(std::count_if(values.begin(), values.end(),
                                                             [](double v) { return v <= 100; })) /
                           static_cast<double>(values.size());
  std::printf("  %-44s n=%-5zu p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  <=100 ms: %5.1f%%%s\n",
              what, values.size(), percentile(values, 0.5), percentile(values, 0.99),
              values.empty() ? 0 : values.back(), within,
              never ? ("  NOT SEEN in " + std::to_string(never) + " cases").c_str() : "");
}

// The daemons' warnings and errors (and fleet notes), a few a host, and the
// server's; counted all the same.
void print_log_problems(const std::vector<const Host*>& hosts, const PostgresServer& server) {
  const auto scan = [](const std::string& name, const std::string& text, const char* const* words) {
    std::istringstream log(text);
    std::string line;
    int found = 0;
    while (std::getline(log, line)) {
      std::string lower = line;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      bool hit = false;
      for (const char* const* word = words; *word; ++word) {
        hit = hit || lower.find(*word) != std::string::npos;
      }
      // The lock events themselves ("warning: locked user=...") are the
      // daemon's record of what the bench did, not trouble.
      const auto event = lower.find("warning: ");
      if (event != std::string::npos) {
        const auto word_end = lower.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", event + 9);
        if (word_end != std::string::npos && lower.compare(word_end, 6, " user=") == 0) hit = false;
      }
      // The readiness probe's connections while the server starts.
      if (lower.find("the database system is starting up") != std::string::npos) hit = false;
      if (!hit) continue;
      if (found++ < 5) std::printf("  %s log: %s\n", name.c_str(), line.c_str());
    }
    return found;
  };
  static const char* const kDaemonWords[] = {"error", "warn", "fleet:", nullptr};
  static const char* const kServerWords[] = {"error", "fatal", "panic", "deadlock", nullptr};
  int daemon_lines = 0;
  for (const Host* host : hosts)
    daemon_lines += scan(host->name, host->daemon->log(), kDaemonWords);
  const int server_lines = scan("postgresql", server.log(), kServerWords);
  std::printf("daemon logs: %d warning/error/fleet lines; server log: %d error lines\n",
              daemon_lines, server_lines);
}

int run(const Settings& settings) {
  std::printf("fleet: %d hosts, %d clients, phases of %.1f s, %d rounds, %d trials a round\n",
              kHosts, settings.clients, settings.seconds, settings.rounds, settings.trials);
  std::printf("load average at the start: %s\n", loadavg().c_str());
  std::fflush(stdout);
  const auto setup_start = Clock::now();
  PostgresServer server;
  server.start();
  const std::string fleet_database = server.create_database();
  const std::string solo_database = server.create_database();
  TempDir shared;
  const auto conninfo_file = [&](const std::string& database) {
    const std::string path = shared / (database + ".conninfo");
    acctlock::test::write_file(path, server.superuser_conninfo(database) + "\n");
    if (chmod(path.c_str(), 0600) != 0) die("chmod " + path);
    return path;
  };
  const std::string fleet_conninfo = conninfo_file(fleet_database);
  const std::string solo_conninfo = conninfo_file(solo_database);

  std::vector<std::unique_ptr<Host>> fleet;
  for (int h = 0; h < kHosts; ++h) {
    const std::string name = "bench-" + std::to_string(h);
    fleet.push_back(start_host(name, "store = postgresql\npostgresql = " + fleet_conninfo +
                                         "\nhost_name = " + name + "\n"));
  }
  const auto solo = start_host("bench-solo", "store = postgresql\npostgresql = " + solo_conninfo +
                                                 "\nhost_name = bench-solo\n");
  const auto sqlite = start_host("bench-sqlite", "");
  std::printf("PostgreSQL and %d daemons ready in %.1f s\n", kHosts + 2,
              ms_between(setup_start, Clock::now()) / 1000);
  std::vector<const Host*> all_hosts;
  for (const auto& host : fleet) all_hosts.push_back(host.get());
  all_hosts.push_back(solo.get());
  all_hosts.push_back(sqlite.get());
  // A run that stops on an error shows the logs before the temp dirs go.
  struct LogsOnError {
    const std::vector<const Host*>& hosts;
    const PostgresServer& server;
    ~LogsOnError() {
      if (std::uncaught_exceptions() > 0) print_log_problems(hosts, server);
    }
  } logs_on_error{all_hosts, server};

  std::vector<std::string> fleet_sockets;
  for (const auto& host : fleet) fleet_sockets.push_back(host->daemon->event_socket());
  const std::vector<Setup> setups{
      {"fleet of 8", fleet_sockets, fleet_database},
      {"1 host, PostgreSQL", {solo->daemon->event_socket()}, solo_database},
      {"1 host, SQLite", {sqlite->daemon->event_socket()}, ""},
  };
  const std::vector<std::string> lock_users = lockable_users();
  const std::string admin0 = fleet[0]->daemon->admin_socket();
  const std::vector<std::string> others(fleet_sockets.begin() + 1, fleet_sockets.end());
  const std::vector<std::string> uninvolved{fleet_sockets[0], fleet_sockets[4], fleet_sockets[5],
                                            fleet_sockets[6], fleet_sockets[7]};

  // [workload][setup] -> per-round figures
  std::map<std::pair<int, std::size_t>, std::vector<Throughput>> throughput;
  std::uint64_t wrong_answers = 0, count_mismatches = 0;
  PropagationTally lock_tally, unlock_tally, deny_tally, flood_lock_tally, flood_unlock_tally;
  int deny_answer_not_locked = 0;
  std::vector<double> idle_p50, idle_p99, flood_p50, flood_p99, flood_rate;
  std::uint64_t lock_trial = 0;

  // What the server's sessions are doing, for an error report.
  const auto activity = [&] {
    return server.query_text(
        "SELECT string_agg(format('%s %s %s/%s %s %s', pid, state, wait_event_type, wait_event, "
        "now() - xact_start, left(query, 100)), E'\\n') FROM pg_stat_activity WHERE backend_type "
        "= 'client backend'");
  };
  const std::chrono::microseconds poll_gap{settings.poll_gap_us};
  // An admin command that answers an error is reported and counted; the
  // trial's user is then unlocked (unmeasured) so the next trial starts
  // clean, whatever part of the failed commit reached the server.
  const auto admin = [&](const std::string& command, const std::string& user) {
    json arguments{{"user", user}};
    if (command == "lock") arguments["reason"] = "bench";
    const json answer = admin_request(admin0, {{"command", command}, {"arguments", arguments}});
    if (answer.value("result", -1) == 0) return true;
    std::printf("  %s %s FAILED: %s\n  server sessions:\n%s\n", command.c_str(), user.c_str(),
                answer.value("text", answer.dump()).c_str(), activity().c_str());
    return false;
  };
  const auto clean_up = [&](const std::string& user) {
    for (int attempt = 0; attempt < 10 && !admin("unlock", user); ++attempt) {
    }
    for (const std::string& socket : others) {
      EventClient client;
      const auto give_up = Clock::now() + kGiveUp;
      while (exchange(client, socket, MessageType::check, user).verdict != Verdict::allowed) {
        if (Clock::now() > give_up) die(user + " stays locked on " + socket + " after an unlock");
      }
    }
  };
  const auto lock_and_unlock = [&](PropagationTally& locks, PropagationTally& unlocks) {
    const std::string& user = lock_users[lock_trial++ % lock_users.size()];
    const auto locked =
        propagate(others, user, Verdict::locked, poll_gap, [&] { return admin("lock", user); });
    locks.add(locked);
    if (!locked) return clean_up(user);
    const auto unlocked =
        propagate(others, user, Verdict::allowed, poll_gap, [&] { return admin("unlock", user); });
    unlocks.add(unlocked);
    if (!unlocked) clean_up(user);
  };

  for (int round = 1; round <= settings.rounds; ++round) {
    std::printf("round %d (load average %s)\n", round, loadavg().c_str());
    // 1. throughput, A B C then C B A.
    for (int w = 0; w < 2; ++w) {
      const Workload workload = w == 0 ? Workload::failures : Workload::logins;
      for (std::size_t k = 0; k < setups.size(); ++k) {
        const std::size_t s = round % 2 == 1 ? k : setups.size() - 1 - k;
        const Setup& setup = setups[s];
        const std::string prefix =
            std::string(w == 0 ? "tf" : "tl") + std::to_string(s) + "r" + std::to_string(round);
        const Throughput result = run_throughput(setup.sockets, prefix, workload, settings);
        throughput[{w, s}].push_back(result);
        wrong_answers += result.wrong_answers;
        std::string counted;
        if (workload == Workload::failures && !setup.database.empty()) {
          // Each answered failure once in the shared row and in the history.
          const std::string in_rows = server.query_text(
              "SELECT coalesce(sum(failures), 0) FROM user_state WHERE user_name LIKE '" + prefix +
                  "c%'",
              setup.database);
          const std::string in_history = server.query_text(
              "SELECT coalesce(sum(events), 0) FROM history WHERE event IN ('failure', 'locked') "
              "AND user_name LIKE '" +
                  prefix + "c%'",
              setup.database);
          const std::string sent = std::to_string(result.failures_answered);
          if (in_rows != sent || in_history != sent) ++count_mismatches;
          counted = "; in the database " + in_rows + " / history " + in_history +
                    (in_rows != sent || in_history != sent ? " (MISMATCH)" : "");
        }
        std::printf("  %-8s %-20s %8.0f events/s  p50 %6.2f ms  p99 %7.2f ms%s%s%s\n",
                    w == 0 ? "failures" : "logins", setup.name.c_str(), result.events_per_second,
                    result.p50, result.p99,
                    workload == Workload::logins
                        ? ("  check p50 " + milliseconds(result.check_p50) + " p99 " +
                           milliseconds(result.check_p99) + " ms")
                              .c_str()
                        : "",
                    result.wrong_answers
                        ? (" WRONG ANSWERS: " + std::to_string(result.wrong_answers)).c_str()
                        : "",
                    counted.c_str());
        std::fflush(stdout);
      }
    }

    // 2. propagation.
    for (int t = 0; t < settings.trials; ++t) {
      lock_and_unlock(lock_tally, unlock_tally);
      const std::string user = "dn" + std::to_string(round) + "t" + std::to_string(t);
      for (int h = 1; h <= 2; ++h) {
        EventClient client;
        exchange(client, fleet_sockets[static_cast<std::size_t>(h)], MessageType::failure, user);
      }
      deny_tally.add(propagate(uninvolved, user, Verdict::locked, poll_gap, [&] {
        EventClient client;
        const Verdict verdict =
            exchange(client, fleet_sockets[3], MessageType::failure, user).verdict;
        if (verdict == Verdict::failed) {
          std::printf("  the failure for %s on bench-3 FAILED (see its log)\n", user.c_str());
          return false;
        }
        if (verdict != Verdict::locked) ++deny_answer_not_locked;
        return true;
      }));
    }
    // The median of a tally's last `n` trials: this round's.
    const auto last = [](const PropagationTally& tally, int n) {
      std::vector<double> values;
      const std::size_t size = tally.everywhere.size();
      for (std::size_t i = size - std::min(size, static_cast<std::size_t>(n)); i < size; ++i) {
        values.push_back(tally.everywhere[i]);
      }
      return median(values);
    };
    std::printf(
        "  propagation, median over %d trials of the slowest host: lock %.2f ms, unlock %.2f ms, "
        "deny over 3 hosts %.2f ms\n",
        settings.trials, last(lock_tally, settings.trials), last(unlock_tally, settings.trials),
        last(deny_tally, settings.trials));

    // 3. a check on bench-0: idle, and while the others take a flood
    // (order flips every round); the flood goes on for the propagations.
    CheckLoop loop;
    std::thread checker(guarded([&] { check_loop(fleet_sockets[0], loop); }));
    // Stopped and joined however the phase ends.
    struct StopChecker {
      CheckLoop& loop;
      std::thread& thread;
      ~StopChecker() {
        loop.stop = true;
        if (thread.joinable()) thread.join();
      }
    } stop_checker{loop, checker};
    const auto phase = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(settings.seconds));
    const auto record = [](std::vector<double> samples, std::vector<double>& p50s,
                           std::vector<double>& p99s) {
      std::sort(samples.begin(), samples.end());
      p50s.push_back(percentile(samples, 0.5));
      p99s.push_back(percentile(samples, 0.99));
      return samples;
    };
    for (int k = 0; k < 2; ++k) {
      const bool flooding = (k == 0) == (round % 2 == 1);
      take_samples(loop);
      if (!flooding) {
        std::this_thread::sleep_for(phase);
        const auto samples = record(take_samples(loop), idle_p50, idle_p99);
        std::printf("  check on bench-0, idle:                 p50 %6.2f ms  p99 %6.2f ms (%zu)\n",
                    idle_p50.back(), idle_p99.back(), samples.size());
        continue;
      }
      Flood flood;
      const auto flood_start = Clock::now();
      flood.start(others, settings.clients, "fl" + std::to_string(round));
      std::this_thread::sleep_for(phase);
      const auto samples = record(take_samples(loop), flood_p50, flood_p99);
      const double rate =
          static_cast<double>(flood.sent.load()) / (ms_between(flood_start, Clock::now()) / 1000);
      flood_rate.push_back(rate);
      for (int t = 0; t < std::max(1, settings.trials / 2); ++t) {
        lock_and_unlock(flood_lock_tally, flood_unlock_tally);
      }
      flood.finish();
      rethrow_failure();
      std::printf(
          "  check on bench-0, flood on 1..7 (%5.0f/s): p50 %6.2f ms  p99 %6.2f ms (%zu); "
          "lock seen everywhere meanwhile: median %.2f ms\n",
          rate, flood_p50.back(), flood_p99.back(), samples.size(),
          last(flood_lock_tally, std::max(1, settings.trials / 2)));
    }
    loop.stop = true;
    checker.join();
    rethrow_failure();
    if (loop.wrong) die("the watched user was not allowed on bench-0");
    std::fflush(stdout);
  }

  // Every host's memory against the database, for a sample of the fleet's
  // users: what the notifications brought.
  int memory_mismatches = 0;
  int sampled = 0;
  {
    const std::string rows = server.query_text(
        "SELECT string_agg(user_name || ' ' || failures, ',') FROM (SELECT user_name, failures "
        "FROM user_state WHERE user_name LIKE 'tf0r%' OR user_name LIKE 'fl%' ORDER BY "
        "md5(user_name) LIMIT 300) AS s",
        fleet_database);
    std::istringstream in(rows);
    std::string item;
    std::vector<EventClient> clients(kHosts);
    while (std::getline(in, item, ',')) {
      const auto space = item.find(' ');
      const std::string user = item.substr(0, space);
      const auto failures = static_cast<std::uint32_t>(std::stoul(item.substr(space + 1)));
      ++sampled;
      for (int h = 0; h < kHosts; ++h) {
        if (exchange(clients[static_cast<std::size_t>(h)],
                     fleet_sockets[static_cast<std::size_t>(h)], MessageType::check, user)
                .failures != failures) {
          ++memory_mismatches;
        }
      }
    }
  }

  std::printf("\nload average at the end: %s\n", loadavg().c_str());
  std::printf("\nthroughput, medians over %d rounds (%d clients; %.1f s a phase):\n",
              settings.rounds, settings.clients, settings.seconds);
  for (int w = 0; w < 2; ++w) {
    const auto figures = [&](std::size_t s, auto member) {
      std::vector<double> values;
      for (const Throughput& one : throughput[{w, s}]) values.push_back(one.*member);
      return median(values);
    };
    const double fleet_rate = figures(0, &Throughput::events_per_second);
    for (std::size_t s = 0; s < setups.size(); ++s) {
      const double rate = figures(s, &Throughput::events_per_second);
      std::printf("  %-8s %-20s %8.0f events/s (fleet x%.2f)  p50 %6.2f ms  p99 %7.2f ms",
                  w == 0 ? "failures" : "logins", setups[s].name.c_str(), rate,
                  rate > 0 ? fleet_rate / rate : 0.0, figures(s, &Throughput::p50),
                  figures(s, &Throughput::p99));
      if (w == 1) {
        std::printf("  check p50 %.2f p99 %.2f ms", figures(s, &Throughput::check_p50),
                    figures(s, &Throughput::check_p99));
      }
      std::printf("\n");
    }
  }
  std::printf("\npropagation (each sample a host; 'everywhere' the slowest host of a trial):\n");
  print_distribution("admin lock on bench-0, each of 7 hosts", lock_tally.per_host,
                     lock_tally.never);
  print_distribution("admin lock, everywhere", lock_tally.everywhere, 0);
  print_distribution("admin lock, its own answer", lock_tally.answered, 0);
  print_distribution("admin unlock, each of 7 hosts", unlock_tally.per_host, unlock_tally.never);
  print_distribution("admin unlock, everywhere", unlock_tally.everywhere, 0);
  print_distribution("deny over 3 hosts, each of 5 others", deny_tally.per_host, deny_tally.never);
  print_distribution("deny over 3 hosts, everywhere", deny_tally.everywhere, 0);
  print_distribution("lock during the flood, each of 7 hosts", flood_lock_tally.per_host,
                     flood_lock_tally.never);
  print_distribution("lock during the flood, everywhere", flood_lock_tally.everywhere, 0);
  print_distribution("unlock during the flood, everywhere", flood_unlock_tally.everywhere,
                     flood_unlock_tally.never);
  const int failed_changes = lock_tally.failed + unlock_tally.failed + deny_tally.failed +
                             flood_lock_tally.failed + flood_unlock_tally.failed;
  std::printf(
      "  changes that FAILED (an error answer, not measured): lock %d, unlock %d, "
      "deny %d, lock during the flood %d, unlock during the flood %d\n",
      lock_tally.failed, unlock_tally.failed, deny_tally.failed, flood_lock_tally.failed,
      flood_unlock_tally.failed);
  std::printf("  hosts that answered the target state before a change (INCONSISTENT): %d\n",
              g_inconsistent.load());
  std::printf("  the deny-th failure's own answer said locked in %d of %d trials\n",
              deny_tally.trials - deny_answer_not_locked, deny_tally.trials);
  // What the fleet recorded of those locks: the rows, and the `locked`
  // events in the history (one a lock, whichever host's commit made it).
  std::printf(
      "  deny users: %s locked in user_state, %s with a `locked` event in the history, of "
      "%d trials\n",
      server
          .query_text("SELECT count(*) FROM user_state WHERE user_name LIKE 'dn%' AND locked",
                      fleet_database)
          .c_str(),
      server
          .query_text("SELECT count(DISTINCT user_name) FROM history WHERE user_name LIKE "
                      "'dn%' AND event = 'locked'",
                      fleet_database)
          .c_str(),
      deny_tally.trials + deny_tally.failed);
  const double idle50 = median(idle_p50), idle99 = median(idle_p99);
  const double flood50 = median(flood_p50), flood99 = median(flood_p99);
  std::printf(
      "\ncheck on bench-0, medians over %d rounds: idle p50 %.2f ms p99 %.2f ms; flood on the 7 "
      "others (%.0f failures/s) p50 %.2f ms (x%.1f) p99 %.2f ms (x%.1f)\n",
      settings.rounds, idle50, idle99, median(flood_rate), flood50,
      idle50 > 0 ? flood50 / idle50 : 0.0, flood99, idle99 > 0 ? flood99 / idle99 : 0.0);

  std::printf(
      "\nchecks: %llu wrong answers; %llu phases whose database count differed from the "
      "answered failures; %d of %d host x user memories differ from the database "
      "(%d users sampled)\n",
      static_cast<unsigned long long>(wrong_answers),
      static_cast<unsigned long long>(count_mismatches), memory_mismatches, sampled * kHosts,
      sampled);
  print_log_problems(all_hosts, server);
  std::printf("load average at the end: %s\n", loadavg().c_str());
  for (const Host* host : all_hosts) host->daemon->stop();
  server.stop();
  return wrong_answers == 0 && count_mismatches == 0 && memory_mismatches == 0 &&
                 failed_changes == 0 && g_inconsistent == 0
             ? 0
             : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  if (!parse(argc, argv, settings)) {
    std::fprintf(stderr,
                 "usage: fleet [--rounds N] [--seconds S] [--clients K] [--trials T] "
                 "[--poll-gap-us N]\n");
    return 2;
  }
  // A daemon that dies mid-run must not kill the bench with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  try {
    return run(settings);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet: %s\n", e.what());
    return 1;
  }
}
