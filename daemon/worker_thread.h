// SPDX-License-Identifier: BSD-3-Clause
// A thread beside the event loop for work that may take long: an admin's
// history query or stats over ten million rows, a slice of history pruning.
// The loop hands a job over and goes on answering logins; the job's result
// comes back to the loop thread, where the caller answers with it.
//
// One thread, jobs in order, a bounded queue: a client that floods the admin
// socket gets "busy", not an unbounded backlog. The jobs use the store's own
// connections (daemon/store/), which are safe to use from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

namespace acctlock {

class WorkerThread {
 public:
  WorkerThread(boost::asio::io_context& io, std::size_t max_queued);
  ~WorkerThread();
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Runs `job` on the worker thread, then `done(result, error)` on the loop
  // thread: `result` is empty and `error` says why when the job threw.
  // Returns false, running nothing, when the queue is full or the worker is
  // stopping.
  template <class Job, class Done>
  bool run(Job job, Done done) {
    return enqueue([this, job = std::move(job), done = std::move(done)]() mutable {
      using Result = decltype(job());
      std::optional<Result> result;
      std::string error;
      try {
        result.emplace(job());
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "unknown error";
      }
      boost::asio::post(io_,
                        [done = std::move(done), result = std::move(result),
                         error = std::move(error)]() mutable { done(std::move(result), error); });
    });
  }

  // Finishes the job in hand, drops the queued ones and joins the thread.
  void stop();

  std::size_t queued() const;

 private:
  bool enqueue(std::function<void()> job);
  void run_thread();

  boost::asio::io_context& io_;
  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace acctlock
