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
#include <atomic>
#include <map>
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

  // A shared store (Store::shared): rows read back from the fleet are
  // taken only if the read began after every commit of this host that had
  // steps for them had landed; else they would drop those steps from memory
  // (LockoutService::adopt_shared). A reader takes a stamp before it reads
  // (any thread); the loop asks whether a row read under it is current,
  // and forgets what an older stamp can no longer ask about.
  std::uint64_t read_stamp() const { return last_finished_.load(); }
  bool row_read_is_current(SharedTable table, const std::string& key, std::uint64_t stamp) const {
    const auto found = last_commit_of_row_.find({table, key});
    return found == last_commit_of_row_.end() || found->second <= stamp;
  }
  void forget_rows_committed_by(std::uint64_t stamp);

  // For a completion (after_commit) of a failure's request: the failure's
  // event was the `event`th of the batch; if a shared store's commit found
  // that it locked the account on the fleet's row (CommitOutcome), its
  // answer says so, as its event does.
  void answer_as_committed(std::size_t event, protocol::Answer& answer) const;

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
    std::uint64_t number = 0;  // in the order commits start, from 1
    CommitOutcome outcome;     // what the store found, once committed
    // Whether it held changes (work's history rows and answered events are
    // moved into the store's batch when it commits: work.empty() no longer
    // says).
    bool staged = false;
  };

  void schedule();
  void start_commit();
  void finish_commit(Batch batch, std::string error, std::chrono::duration<double> took);
  void run_thread();
  // Writer thread: commits, then publishes to the EventLog; `took` is the
  // transaction's time alone.
  std::string commit(Batch& batch, std::chrono::duration<double>& took);
  // A shared store's commit decided some of this host's failures otherwise
  // (CommitOutcome): their events follow it.
  static void follow_merged_failures(const CommitOutcome& outcome,
                                     std::vector<LockEvent>& events);
  // Writer thread: the EventLog is only ever called from there.
  void publish(const std::vector<LockEvent>& events) noexcept;

  boost::asio::io_context& io_;
  Store& store_;
  EventLog& events_;
  std::function<void()> on_failure_;
  CommitObserver on_commit_;

  // Loop-thread state.
  Batch next_;
  // The outcome of the commit whose completions are running.
  CommitOutcome finished_outcome_;
  // The number of the newest batch with steps for each row (shared store),
  // at most about kMaxRowsRemembered of them.
  static constexpr std::size_t kMaxRowsRemembered = 65536;
  static constexpr std::uint64_t kBatchesRemembered = 64;
  std::map<std::pair<SharedTable, std::string>, std::uint64_t> last_commit_of_row_;
  std::uint64_t batches_started_ = 0;
  std::atomic<std::uint64_t> last_finished_{0};  // written by the writer thread
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
