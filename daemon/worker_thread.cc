// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/worker_thread.h"

namespace acctlock {

WorkerThread::WorkerThread(boost::asio::io_context& io, std::size_t max_queued)
    : io_(io), max_queued_(max_queued) {
  thread_ = std::thread([this] { run_thread(); });
}

WorkerThread::~WorkerThread() {
  stop();
}

bool WorkerThread::enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

std::size_t WorkerThread::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void WorkerThread::run_thread() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void WorkerThread::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

}  // namespace acctlock
