// SPDX-License-Identifier: BSD-3-Clause
// Group commit: many clients' events become durable in one transaction.
//
// The event loop stages changes into pending(); a writer thread commits them
// while the loop goes on collecting the next batch. When a commit returns, the
// writer thread publishes the batch's events to the EventLog, then the waiting
// clients are answered on the loop thread. So every event whose answer waits for the commit (every
// failure; see EventSession::handle) is on disk before its answer leaves, and one fsync serves
// every client that was waiting for it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/journal/event_log.h"
#include "daemon/lockout_service.h"
#include "daemon/store/store.h"

namespace acctlock {

class BatchWriter {
 public:
  // Runs on the loop thread after the commit that held the caller's changes;
  // `error` is empty on success, else what the store reported.
  using Completion = std::function<void(const std::string& error)>;

  // `on_failure` runs on the loop thread after a failed commit, once the
  // batch's clients have been told; the daemon reloads its state there.
  BatchWriter(boost::asio::io_context& io, Store& store, EventLog& events,
              std::function<void()> on_failure);
  ~BatchWriter();
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Changes staged here go into the next commit.
  PendingWork& pending() { return next_.work; }

  // Calls `done` after the next commit (schedules one if needed).
  void after_commit(Completion done);

  // Commits what is pending even if nobody waits for it (timer expiries).
  void flush();

  // Whether a commit is running or waiting.
  bool busy() const { return in_flight_ || !next_.work.empty() || !next_.completions.empty(); }

  // Stops the writer thread after it has committed everything staged.
  void shut_down();

  std::uint64_t commits() const { return commits_; }

  // Called on the loop thread after each commit with the transaction's time,
  // its events and whether it failed: the metrics and `watch` streams, which
  // live on the loop, learn of events here (the EventLog hears of them on
  // the writer thread).
  using CommitObserver = std::function<void(std::chrono::duration<double> took,
                                            const std::vector<LockEvent>& events, bool failed)>;
  void on_commit(CommitObserver observer) { on_commit_ = std::move(observer); }

 private:
  struct Batch {
    PendingWork work;
    std::vector<Completion> completions;
  };

  void schedule();
  void start_commit();
  void finish_commit(Batch batch, std::string error, std::chrono::duration<double> took);
  void run_thread();
  // Writer thread: commits, then publishes to the EventLog; `took` is the
  // transaction's time alone.
  std::string commit(const Batch& batch, std::chrono::duration<double>& took);
  // Writer thread: the EventLog is only ever called from there.
  void publish(const std::vector<LockEvent>& events) noexcept;

  boost::asio::io_context& io_;
  Store& store_;
  EventLog& events_;
  std::function<void()> on_failure_;
  CommitObserver on_commit_;

  // Loop-thread state.
  Batch next_;
  bool in_flight_ = false;
  bool scheduled_ = false;
  std::uint64_t commits_ = 0;

  // Hand-over to the writer thread.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<Batch> handed_over_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace acctlock
