// SPDX-License-Identifier: BSD-3-Clause
// LISTEN on one PostgreSQL channel from a thread of its own (issue 15): how
// a host hears of the rows other hosts' commits changed within milliseconds,
// without polling the tables.
//
// Its own connection, since a listening connection must not sit in another
// statement: libpq delivers notifications as it reads the socket, and the
// thread waits on that socket (and on an eventfd that stops it), so an idle
// fleet costs no queries. A lost connection is made anew, with a growing
// pause (1 s up to 30 s); notifications sent while it was away are lost,
// so the owner is told to read everything again once it listens again.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace acctlock {

class NotificationListener {
 public:
  struct Handlers {
    // The payloads of the notifications that arrived together, in the
    // order the server sent them (commit order).
    std::function<void(std::vector<std::string> payloads)> notified;
    // Listening again after the connection was lost: notifications may have
    // been missed.
    std::function<void()> resumed;
    // A lost connection or a failed reconnection, for the log (never the
    // connection string).
    std::function<void(const std::string& problem)> trouble;
  };

  // Connects with `conninfo` (bounded by `connect_timeout`) and starts
  // listening on `channel` (a plain identifier). Throws StoreError if the
  // first connection or LISTEN fails, unless `wait_for_server` (a host that
  // started apart from its fleet): then the thread tries again as after a
  // lost connection, and calls `resumed` once it listens. `server` names
  // the server in errors.
  NotificationListener(std::string conninfo, std::chrono::seconds connect_timeout,
                       std::string channel, std::string server, Handlers handlers,
                       bool wait_for_server = false);
  // Stops the thread and closes the connection.
  ~NotificationListener();

  // Hands `payloads` to `notified` on the listener's thread, after what it
  // has already delivered, as if they had been notified: so that a row read
  // again reaches the owner in the same order as the notifications' reads,
  // never an older read after a newer one. Any thread.
  void inject(std::vector<std::string> payloads);
  NotificationListener(const NotificationListener&) = delete;
  NotificationListener& operator=(const NotificationListener&) = delete;

 private:
  struct Connection;
  void run();
  // A new connection that listens; nullptr and `problem` set when it fails.
  Connection* connect(std::string& problem);
  // Waits up to `pause` or until stopped; false when stopped.
  bool pause(std::chrono::seconds pause);

  std::string conninfo_;
  std::chrono::seconds connect_timeout_;
  std::string channel_;
  std::string server_;
  Handlers handlers_;
  int stop_fd_ = -1;
  int wake_fd_ = -1;  // inject() has payloads waiting
  std::mutex injected_mutex_;
  std::vector<std::string> injected_;
  Connection* connection_ = nullptr;  // owned; only the thread uses it after start
  std::thread thread_;
};

}  // namespace acctlock
