// event_throughput: many concurrent clients reporting failures for many users
// to a running acctlockd, as fast as it acknowledges them. Every answer it
// counts was sent after the failure was committed to disk (the daemon's group
// commit), so the figure is durable events per second.
//
//   event_throughput --socket PATH [--clients 64] [--users 10000] [--seconds 10]
//
// bench/run-event-throughput starts a throwaway daemon and runs this.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/event_client.h"
#include "common/event_id.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  std::string socket;
  int clients = 64;
  int users = 10000;
  double seconds = 10;
};

bool parse(int argc, char** argv, Settings& settings) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--socket") settings.socket = value;
    else if (flag == "--clients") settings.clients = std::atoi(value);
    else if (flag == "--users") settings.users = std::atoi(value);
    else if (flag == "--seconds") settings.seconds = std::atof(value);
    else return false;
  }
  return !settings.socket.empty() && settings.clients > 0 && settings.users > 0 &&
         settings.seconds > 0;
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
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(settings.clients));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < settings.clients; ++c) {
    threads.emplace_back([&, c] {
      acctlock::EventClient client;
      auto& mine = latencies[static_cast<std::size_t>(c)];
      mine.reserve(200000);
      acctlock::protocol::Request request{acctlock::protocol::MessageType::failure, false, 1, "",
                                          "bench", "192.0.2.1", "ssh", ""};
      acctlock::protocol::Answer answer;
      for (long i = c; !stop.load(std::memory_order_relaxed); i += settings.clients) {
        request.user = "bench-" + std::to_string(i % settings.users);
        request.event_id = acctlock::new_event_id();
        const auto begin = Clock::now();
        const auto status = client.exchange(settings.socket, request, answer,
                                            std::chrono::seconds(10));
        const auto end = Clock::now();
        if (status != acctlock::ClientStatus::ok ||
            answer.verdict == acctlock::protocol::Verdict::failed) {
          ++errors;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::micro>(end - begin).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(settings.seconds));
  stop = true;
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> all;
  for (auto& mine : latencies) all.insert(all.end(), mine.begin(), mine.end());
  std::sort(all.begin(), all.end());
  std::printf("clients=%d users=%d seconds=%.1f\n", settings.clients, settings.users, elapsed);
  std::printf("events=%zu errors=%ld events/s=%.0f\n", all.size(), errors.load(),
              static_cast<double>(all.size()) / elapsed);
  std::printf("latency_us p50=%.0f p99=%.0f max=%.0f\n", percentile(all, 0.50),
              percentile(all, 0.99), all.empty() ? 0.0 : all.back());
  return errors.load() == 0 ? 0 : 1;
}
