// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/events/batch_writer.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "daemon/log.h"

namespace acctlock {

BatchWriter::BatchWriter(boost::asio::io_context& io, Store& store, EventLog& events,
                         std::function<void()> on_failure)
    : io_(io), store_(store), events_(events), on_failure_(std::move(on_failure)) {
  thread_ = std::thread([this] { run_thread(); });
}

BatchWriter::~BatchWriter() {
  shut_down();
}

void BatchWriter::after_commit(Completion done) {
  next_.completions.push_back(std::move(done));
  schedule();
}

void BatchWriter::flush() {
  if (!next_.work.empty()) schedule();
}

void BatchWriter::schedule() {
  if (in_flight_ || scheduled_) return;
  // Posting rather than committing now lets every read that is already
  // complete join this batch first: that is what makes the commit a group one.
  scheduled_ = true;
  boost::asio::post(io_, [this] {
    scheduled_ = false;
    start_commit();
  });
}

void BatchWriter::start_commit() {
  if (in_flight_ || (next_.work.empty() && next_.completions.empty())) return;
  in_flight_ = true;
  next_.number = ++batches_started_;
  next_.staged = !next_.work.empty();
  // Bounded: with nobody reading back (apart from the fleet, or a quiet
  // listener), rows of commits long landed are forgotten; a read that old
  // cannot still be on its way.
  if (last_commit_of_row_.size() > kMaxRowsRemembered && next_.number > kBatchesRemembered) {
    forget_rows_committed_by(next_.number - kBatchesRemembered);
  }
  const auto note_rows = [&](SharedTable table, const auto& rows) {
    for (const auto& row : rows) last_commit_of_row_[{table, row.first}] = next_.number;
  };
  note_rows(SharedTable::users, next_.work.state_merges);
  note_rows(SharedTable::sources, next_.work.source_merges);
  note_rows(SharedTable::unfamiliar, next_.work.unfamiliar_merges);
  if (!next_.work.state_merges.empty() || !next_.work.unfamiliar_merges.empty()) {
    note_rows(SharedTable::familiar, next_.work.familiar);
  }
  // The next batch is about as big as this one: its vectors start at this
  // one's sizes (up to a bound) instead of growing from empty, which moved
  // every event and history row about eight times per commit.
  constexpr std::size_t kMaxReserved = 4096;
  const std::size_t events = std::min(next_.work.events.size(), kMaxReserved);
  const std::size_t history = std::min(next_.work.history.size(), kMaxReserved);
  const std::size_t answered = std::min(next_.work.answered.size(), kMaxReserved);
  const std::size_t completions = std::min(next_.completions.size(), kMaxReserved);
  {
    std::lock_guard lock(mutex_);
    handed_over_ = std::move(next_);
  }
  next_ = Batch{};
  next_.work.events.reserve(events);
  next_.work.history.reserve(history);
  next_.work.answered.reserve(answered);
  next_.completions.reserve(completions);
  wake_.notify_one();
}

std::string BatchWriter::commit(Batch& batch, std::chrono::duration<double>& took) {
  std::string error;
  const auto started = std::chrono::steady_clock::now();
  try {
    if (batch.staged) {
      batch.outcome = store_.commit(batch.work.take_store_batch());
      follow_merged_failures(batch.outcome, batch.work.events);
    }
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown storage error";
  }
  took = std::chrono::steady_clock::now() - started;
  // Landed (or failed, after which the daemon reloads): a read that begins
  // from now on sees it.
  last_finished_.store(batch.number);
  // Published after the commit and before any answer leaves; from the
  // writer thread for a handed-over batch, so that a journal datagram or a
  // stderr line per event does not cost the loop a syscall per event.
  if (error.empty()) publish(batch.work.events);
  return error;
}

void BatchWriter::run_thread() {
  for (;;) {
    Batch batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return handed_over_.has_value() || stopping_; });
      if (!handed_over_) return;  // stopping with nothing left
      batch = std::move(*handed_over_);
      handed_over_.reset();
    }
    std::chrono::duration<double> took{};
    std::string error = commit(batch, took);
    boost::asio::post(io_,
                      [this, batch = std::move(batch), error = std::move(error), took]() mutable {
                        finish_commit(std::move(batch), std::move(error), took);
                      });
  }
}

void BatchWriter::finish_commit(Batch batch, std::string error,
                                std::chrono::duration<double> took) {
  in_flight_ = false;
  ++commits_;
  // The metrics and the watchers live on the loop: they see the events
  // here, after the journal has (on the writer thread).
  if (on_commit_ && batch.staged) {
    on_commit_(took, batch.work.events, !error.empty());
  }
  if (!error.empty()) {
    log_error("could not save " + std::to_string(batch.work.events.size()) +
              " event(s) to the database: " + error +
              (on_failure_ ? "; reloading the state from the database" : ""));
  }
  finished_outcome_ = std::move(batch.outcome);
  for (auto& done : batch.completions) done(error);
  finished_outcome_ = CommitOutcome{};
  if (!error.empty()) {
    // What was staged after the failed batch built on it in memory; it cannot
    // be committed without it. Fail it too, then reload from disk.
    Batch dependent = std::move(next_);
    next_ = Batch{};
    for (auto& done : dependent.completions) done(error);
    if (on_failure_) on_failure_();
    return;
  }
  if (!next_.work.empty() || !next_.completions.empty()) start_commit();
}

void BatchWriter::follow_merged_failures(const CommitOutcome& outcome,
                                         std::vector<LockEvent>& events) {
  // The events say what the fleet's rows made of this host's failures, as
  // the history rows of the same commit do: the journal, the metrics and
  // `watch` see the lock that a failure here completed on the fleet.
  for (const MergedFailure& failure : outcome.failures) {
    if (failure.event >= events.size()) continue;
    LockEvent& event = events[failure.event];
    event.entry.event = failure.kind;
    event.entry.detail = failure.detail;
    event.failures = failure.failures;
    event.level = failure.level;
    event.locked_until = failure.locked_until;
  }
}

void BatchWriter::answer_as_committed(std::size_t event, protocol::Answer& answer) const {
  for (const MergedFailure& failure : finished_outcome_.failures) {
    if (failure.event != event) continue;
    // Only a lock is news: a failure this host took for the lock found the
    // account locked already, and its answer says locked all the same.
    if (failure.kind != HistoryEvent::locked || answer.verdict != protocol::Verdict::allowed) {
      return;
    }
    answer.verdict = protocol::Verdict::locked;
    answer.lock = failure.locked_until ? LockKind::failures : LockKind::permanent;
    answer.failures = failure.failures;
    answer.level = failure.level;
    answer.locked_until =
        failure.locked_until ? failure.locked_until->time_since_epoch().count() : 0;
    return;
  }
}

void BatchWriter::publish(const std::vector<LockEvent>& events) noexcept {
  try {
    events_.record_all(events);
  } catch (const std::exception& e) {
    // The events are in the history; losing their log lines must not lose
    // the answers of the batch.
    log_error(std::string("could not publish the events of a commit: ") + e.what());
  }
}

void BatchWriter::forget_rows_committed_by(std::uint64_t stamp) {
  std::erase_if(last_commit_of_row_, [stamp](const auto& row) { return row.second <= stamp; });
}

void BatchWriter::shut_down() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

}  // namespace acctlock
