// SPDX-License-Identifier: BSD-3-Clause
// What the admin socket can be asked: a registry of named command handlers
// that takes a parsed request and the caller's kernel credentials and produces
// an answer. It knows nothing about sockets or framing (daemon/admin/admin_server.h
// carries the bytes), so it is tested by calling it directly.
//
// Nothing here walks every tracked user or every history row on the event
// loop: `list` is paged over the service's name-ordered state (and its index
// of locked users), and the store reads of `history` and `stats` run on the
// reader thread (AdminContext::reader), their answers built back on the loop.
//
// Authorisation happens here, before a handler reads or changes anything:
// root, and callers in admin_socket_group (by their process's groups or the group
// database), may use every command; anyone else may only read their own
// `status` and `history`, and is told "permission denied" for the rest.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/admin_protocol.h"
#include "common/time.h"
#include "daemon/admin/event_watchers.h"
#include "daemon/events/batch_writer.h"
#include "daemon/lockout_service.h"
#include "daemon/sockets/peer_credentials.h"
#include "daemon/store/store.h"
#include "daemon/worker_thread.h"

namespace acctlock {

// A source an admin names (admin_commands.cc).
struct SourceText;

// Who asks, as the kernel reported it for the connection.
struct AdminCaller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  pid_t pid = 0;              // for the log only
};

struct AdminAnswer {
  admin::Result result = admin::Result::success;
  std::string text;
  nlohmann::json arguments = nlohmann::json::object();
  // The answer line as sent, when a handler made it off the loop (a `list`
  // page runs to 300 KB); empty: the transport makes it from the fields.
  std::string serialized;
  // Set by `watch`: after this answer the connection streams lock events
  // (daemon/admin/event_watchers.h) instead of reading more requests.
  struct Watch {
    bool successes = false;  // successful logins too, not only lock events
  };
  std::optional<Watch> watch;

  nlohmann::json to_json() const;
  std::string to_line() const;
};

struct AdminContext {
  LockoutService& service;
  BatchWriter& writer;
  Store& store;
  UserDirectory& users;
  std::function<TimePoint()> now;
  // Read per request, so a reload that changes admin_socket_group applies at once.
  std::function<std::string()> admin_socket_group;
  // Where store reads (history, stats) run, off the event loop; without one
  // they run inline, on the caller's thread.
  WorkerThread* reader = nullptr;
  // Where `watch` connections register; none: `watch` is refused.
  EventWatchers* watchers = nullptr;
  // The event loop, where `list` gives the turn back between the slices of
  // its page's copy; none: the page is copied in one turn.
  boost::asio::io_context* loop = nullptr;
};

// The gid of group `name` through NSS, or nullopt when there is no such group.
std::optional<gid_t> group_id(const std::string& name);

// "2024-05-01T12:34:56Z".
std::string to_iso8601(TimePoint time);

class AdminCommands {
 public:
  // Who may run a command.
  enum class Access {
    admin,        // root and admin_socket_group only
    own_account,  // also any caller for the user whose uid is theirs
  };
  // Called exactly once per request, possibly later (after a commit).
  using Reply = std::function<void(AdminAnswer)>;
  using Handler =
      std::function<void(const AdminCaller&, const nlohmann::json& arguments, Reply reply)>;

  // Registers status, list, lock, unlock, reset, history and stats.
  explicit AdminCommands(AdminContext context);
  AdminCommands(const AdminCommands&) = delete;
  AdminCommands& operator=(const AdminCommands&) = delete;

  // `arguments`: the argument keys the command takes. dispatch() refuses a
  // request with any other key (invalid, naming it) before the handler
  // runs, so a misspelt or newer option is never silently ignored.
  void add(std::string name, Access access, std::vector<std::string> arguments, Handler handler);
  // A command that takes no arguments.
  void add(std::string name, Access access, Handler handler) {
    add(std::move(name), access, {}, std::move(handler));
  }

  // Checks the request's shape and the caller's right to run it, then runs
  // the handler. Every outcome, including a handler's exception, ends in
  // exactly one call of `reply`.
  void dispatch(const AdminCaller& caller, const nlohmann::json& request, Reply reply);

  bool is_admin(const AdminCaller& caller) const;

  // How many users a turn of the loop copies for a `list` page
  // (AdminContext::loop): about 1 ms of the loop at most.
  static constexpr std::size_t kListSliceUsers = 100;

  // Requests refused as "permission denied" so far (for the metrics).
  std::uint64_t refused_requests() const { return refused_requests_; }

 private:
  struct Entry {
    Access access;
    std::vector<std::string> arguments;  // the keys it takes
    Handler handler;
  };

  void register_builtin_commands();
  void status(const nlohmann::json& arguments, const Reply& reply);
  void list(const nlohmann::json& arguments, const Reply& reply);
  struct ListPage;
  void copy_list_slice(std::shared_ptr<ListPage> page);
  // Sources (issue 11): `sources` pages through them, `source_status` tells
  // one (and the manual block covering it), `lock_source` is an admin's
  // block of an address, prefix, host or local user, `unlock_source` lifts
  // a block.
  void sources(const nlohmann::json& arguments, const Reply& reply);
  void source_status(const nlohmann::json& arguments, const Reply& reply);
  void lock_source(const AdminCaller& caller, const nlohmann::json& arguments,
                   const Reply& reply);
  nlohmann::json source_status_json(const SourceText& given, TimePoint now) const;
  static std::string describe_source(const nlohmann::json& status);
  void unlock_source(const AdminCaller& caller, const nlohmann::json& arguments,
                     const Reply& reply);
  void lock(const AdminCaller& caller, const nlohmann::json& arguments, const Reply& reply);
  void unlock(const AdminCaller& caller, const nlohmann::json& arguments, bool reset_only,
              const Reply& reply);
  void history(const nlohmann::json& arguments, const Reply& reply);
  void stats(const nlohmann::json& arguments, const Reply& reply);
  // faillock --reset without --user, acctlock unlock --all: every tracked user.
  void unlock_all(const AdminCaller& caller, const Reply& reply);
  // acctlock import-faillock: pam_faillock's tally records, oldest first.
  void import_faillock(const AdminCaller& caller, const nlohmann::json& arguments,
                       const Reply& reply);
  void watch(const nlohmann::json& arguments, const Reply& reply);

  // Answers after the staged changes are durable, with the user's status then.
  void reply_after_commit(const std::string& user, std::string text, const Reply& reply);
  bool user_exists(const std::string& user);
  nlohmann::json status_json(const std::string& user, TimePoint now) const;

  AdminContext context_;
  std::map<std::string, Entry, std::less<>> commands_;
  std::uint64_t refused_requests_ = 0;
};

}  // namespace acctlock
