// SPDX-License-Identifier: BSD-3-Clause
// event_throughput: many concurrent clients reporting failures for many users
// to a running acctlockd, as fast as it acknowledges them. Every answer it
// counts was sent after the failure was committed to disk (the daemon's group
// commit), so the figure is durable events per second.
//
//   event_throughput --socket PATH [--clients 64] [--users 10000] [--seconds 10]
//                    [--threads 1]
//
// Each client is a connection of its own that sends one failure, waits for
// its answer and sends the next. The clients are driven by --threads threads
// (each an epoll loop over its share of the connections), not a thread each:
// 256 client threads spent more CPU than the daemon they measured, on the
// same two cores.
//
// bench/run-event-throughput starts a throwaway daemon and runs this.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/event_id.h"
#include "common/protocol.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  std::string socket;
  int clients = 64;
  int users = 10000;
  double seconds = 10;
  int threads = 1;
};

bool parse(int argc, char** argv, Settings& settings) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--socket")
      settings.socket = value;
    else if (flag == "--clients")
      settings.clients = std::atoi(value);
    else if (flag == "--users")
      settings.users = std::atoi(value);
    else if (flag == "--seconds")
      settings.seconds = std::atof(value);
    else if (flag == "--threads")
      settings.threads = std::atoi(value);
    else
      return false;
  }
  return !settings.socket.empty() && settings.clients > 0 && settings.users > 0 &&
         settings.seconds > 0 && settings.threads > 0;
}

int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("event_throughput: connect");
    std::exit(1);
  }
  return fd;
}

struct Connection {
  int fd = -1;
  long next = 0;  // the next user number this client reports
  Clock::time_point sent{};
  std::string in;
};

// One thread's share of the clients: each sends a failure, and the next
// once its answer is in.
void drive(const Settings& settings, std::vector<Connection>& connections,
           const std::atomic<bool>& stop, std::atomic<long>& errors,
           std::vector<double>& latencies) {
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  const auto send_next = [&](Connection& connection) {
    acctlock::protocol::Request request{
        acctlock::protocol::MessageType::failure, false, 1, "", "bench", "192.0.2.1", "ssh", ""};
    request.user = "bench-" + std::to_string(connection.next % settings.users);
    request.event_id = acctlock::new_event_id();
    connection.next += settings.clients;
    std::string frame;
    acctlock::protocol::encode_request(request, frame);
    connection.sent = Clock::now();
    // A frame is far smaller than a socket buffer: it goes in one send.
    if (::send(connection.fd, frame.data(), frame.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(frame.size())) {
      std::perror("event_throughput: send");
      std::exit(1);
    }
  };
  for (std::size_t i = 0; i < connections.size(); ++i) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, connections[i].fd, &event);
    send_next(connections[i]);
  }
  epoll_event ready[64];
  while (!stop.load(std::memory_order_relaxed)) {
    const int count = ::epoll_wait(epoll, ready, 64, 100);
    for (int k = 0; k < count; ++k) {
      Connection& connection = connections[ready[k].data.u64];
      char chunk[512];
      const ssize_t n = ::recv(connection.fd, chunk, sizeof chunk, 0);
      if (n <= 0) {
        std::fprintf(stderr, "event_throughput: the daemon closed a connection\n");
        std::exit(1);
      }
      connection.in.append(chunk, static_cast<std::size_t>(n));
      const auto decoded = acctlock::protocol::decode_answer(connection.in);
      if (decoded.error == acctlock::protocol::DecodeError::incomplete) continue;
      const auto end = Clock::now();
      if (!decoded.message || decoded.message->verdict != acctlock::protocol::Verdict::allowed) {
        ++errors;
      } else {
        latencies.push_back(
            std::chrono::duration<double, std::micro>(end - connection.sent).count());
      }
      connection.in.erase(0, decoded.message ? decoded.consumed : connection.in.size());
      send_next(connection);
    }
  }
  ::close(epoll);
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  if (!parse(argc, argv, settings)) {
    std::fprintf(stderr,
                 "usage: event_throughput --socket PATH [--clients N] [--users N] [--seconds S]\n");
    return 2;
  }

  std::atomic<bool> stop{false};
  std::atomic<long> errors{0};
  const auto threads_used = static_cast<std::size_t>(std::min(settings.threads, settings.clients));
  std::vector<std::vector<Connection>> shares(threads_used);
  for (int c = 0; c < settings.clients; ++c) {
    Connection connection;
    connection.fd = connect_to(settings.socket);
    connection.next = c;
    shares[static_cast<std::size_t>(c) % threads_used].push_back(std::move(connection));
  }
  std::vector<std::vector<double>> latencies(threads_used);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (std::size_t t = 0; t < threads_used; ++t) {
    latencies[t].reserve(1 << 20);
    threads.emplace_back([&, t] { drive(settings, shares[t], stop, errors, latencies[t]); });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(settings.seconds));
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> all;
  for (auto& mine : latencies) all.insert(all.end(), mine.begin(), mine.end());
  std::sort(all.begin(), all.end());
  for (auto& share : shares) {
    for (auto& connection : share) ::close(connection.fd);
  }
  std::printf("clients=%d users=%d threads=%zu seconds=%.1f\n", settings.clients, settings.users,
              threads_used, elapsed);
  std::printf("events=%zu errors=%ld events/s=%.0f\n", all.size(), errors.load(),
              static_cast<double>(all.size()) / elapsed);
  std::printf("latency_us p50=%.0f p99=%.0f max=%.0f\n", percentile(all, 0.50),
              percentile(all, 0.99), all.empty() ? 0.0 : all.back());
  return errors.load() == 0 ? 0 : 1;
}
