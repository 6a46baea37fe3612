// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/postgresql/postgresql_store.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <optional>
#include <string_view>

#include "daemon/store/history_budget.h"

namespace acctlock {
namespace {

// Each entry takes the schema from version N to N + 1, in one transaction.
// Never edit a released entry: add one and bump kSchemaVersion. Times are unix
// seconds, as in the SQLite schema, so the two read alike.
constexpr const char* kMigrations[] = {
    // 1: the first schema. `host` says which host wrote a history row or
    // answered an event; answered event ids are per host (the local PAM
    // module makes them), lock state is fleet-wide.
    R"sql(
CREATE TABLE user_state (
  user_name text NOT NULL PRIMARY KEY CHECK (user_name <> ''),
  failures bigint NOT NULL CHECK (failures >= 0),
  last_failure bigint NOT NULL,
  level bigint NOT NULL CHECK (level >= 0),
  last_lock_end bigint NOT NULL,
  locked boolean NOT NULL,                          -- a failure lock is in force
  lock_since bigint CHECK (NOT locked OR lock_since IS NOT NULL),
  lock_until bigint,                                -- NULL: until an admin unlocks
  manual boolean NOT NULL,                          -- an admin's lock is in force
  manual_reason text CHECK (NOT manual OR manual_reason IS NOT NULL),
  manual_since bigint CHECK (NOT manual OR manual_since IS NOT NULL),
  manual_admin_uid bigint CHECK (NOT manual OR manual_admin_uid IS NOT NULL),
  manual_until bigint                               -- NULL: until an admin unlocks
);

CREATE TABLE history (
  id bigserial PRIMARY KEY,
  time bigint NOT NULL,
  user_name text NOT NULL,
  event text NOT NULL,
  service text NOT NULL,
  rhost text NOT NULL,
  tty text NOT NULL,
  ruser text NOT NULL,
  admin_uid bigint,  -- NULL unless an admin did it
  detail text NOT NULL,
  host text NOT NULL
);
CREATE INDEX history_by_user_time ON history (user_name, time);
CREATE INDEX history_by_time ON history (time);

CREATE TABLE answered_event (
  seq bigserial PRIMARY KEY,
  host text NOT NULL,
  event_id bigint NOT NULL,
  peer_uid bigint NOT NULL,
  user_name text NOT NULL,
  type integer NOT NULL,
  time bigint NOT NULL,
  answer bytea NOT NULL
);
CREATE INDEX answered_event_by_host_time ON answered_event (host, time);

-- The hosts writing to this database (PostgresqlStore::claim_host).
CREATE TABLE fleet_host (
  host text NOT NULL PRIMARY KEY CHECK (host <> ''),
  first_seen timestamptz NOT NULL DEFAULT now(),
  last_start timestamptz NOT NULL DEFAULT now()
);
)sql",
    // 2: fail_window = sliding keeps the times of the counted failures before
    // last_failure, as in SQLite's schema 4 (unix seconds, space-separated,
    // oldest first). Rows from before have none.
    R"sql(
ALTER TABLE user_state ADD COLUMN earlier_failures text NOT NULL DEFAULT '';
)sql",
    // 3: per-source state (issue 11): the columns of user_state, keyed by the
    // normalised source ("192.0.2.1", "2001:db8::/64", "local:alice").
    R"sql(
CREATE TABLE source_state (
  source text NOT NULL PRIMARY KEY CHECK (source <> ''),
  failures bigint NOT NULL CHECK (failures >= 0),
  last_failure bigint NOT NULL,
  level bigint NOT NULL CHECK (level >= 0),
  last_lock_end bigint NOT NULL,
  locked boolean NOT NULL,
  lock_since bigint CHECK (NOT locked OR lock_since IS NOT NULL),
  lock_until bigint,
  manual boolean NOT NULL,
  manual_reason text CHECK (NOT manual OR manual_reason IS NOT NULL),
  manual_since bigint CHECK (NOT manual OR manual_since IS NOT NULL),
  manual_admin_uid bigint CHECK (NOT manual OR manual_admin_uid IS NOT NULL),
  manual_until bigint,
  earlier_failures text NOT NULL DEFAULT ''
);
)sql",
    // 4: bounded history (issue 9), as SQLite's schema 6. peer_uid: who
    // reported the event (NULL: the daemon, an admin, or a row from before).
    // An aggregate row stands for `events` events of one key from first_time
    // to time; a plain row has events = 1 and no first_time. The partial
    // indexes keep the start-up counts and the aggregate lookup off a full
    // scan; both lead with host, since each host counts its own rows.
    R"sql(
ALTER TABLE history ADD COLUMN peer_uid bigint;
ALTER TABLE history ADD COLUMN events bigint NOT NULL DEFAULT 1 CHECK (events >= 1);
ALTER TABLE history ADD COLUMN first_time bigint;
CREATE INDEX history_by_host_peer_uid ON history (host, peer_uid)
  WHERE peer_uid IS NOT NULL AND peer_uid <> 0;
CREATE INDEX history_aggregates ON history (host, user_name, event, service, rhost)
  WHERE first_time IS NOT NULL;
)sql",
    // 5: familiar sources (issue 11, lockout_scope = unfamiliar), as in
    // SQLite's schema 7: per user, the sources of successful logins, and the
    // user's failure state for unfamiliar sources (the columns of
    // user_state, which keeps the familiar sources' state and the manual
    // lock).
    R"sql(
CREATE TABLE familiar_source (
  user_name text NOT NULL CHECK (user_name <> ''),
  source text NOT NULL CHECK (source <> ''),
  last_success bigint NOT NULL,
  PRIMARY KEY (user_name, source)
);

CREATE TABLE unfamiliar_state (
  user_name text NOT NULL PRIMARY KEY CHECK (user_name <> ''),
  failures bigint NOT NULL CHECK (failures >= 0),
  last_failure bigint NOT NULL,
  level bigint NOT NULL CHECK (level >= 0),
  last_lock_end bigint NOT NULL,
  locked boolean NOT NULL,
  lock_since bigint CHECK (NOT locked OR lock_since IS NOT NULL),
  lock_until bigint,
  manual boolean NOT NULL,
  manual_reason text CHECK (NOT manual OR manual_reason IS NOT NULL),
  manual_since bigint CHECK (NOT manual OR manual_since IS NOT NULL),
  manual_admin_uid bigint CHECK (NOT manual OR manual_admin_uid IS NOT NULL),
  manual_until bigint,
  earlier_failures text NOT NULL DEFAULT ''
);
)sql",
    // 6: degraded mode (issue 15): how far each host's outbox (a local
    // SQLite file, LocalOutbox) of which generation has been replayed here.
    R"sql(
ALTER TABLE fleet_host ADD COLUMN outbox_generation text;
ALTER TABLE fleet_host ADD COLUMN outbox_replayed_through bigint NOT NULL DEFAULT 0;
)sql",
};
static_assert(std::size(kMigrations) == PostgresqlStore::kSchemaVersion);

// The advisory lock taken by migrations ("acctlock" in ASCII, truncated).
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7090181463396918123)";

// The channel every commit announces its changed state rows on, one
// notification each: "HOST<tab>TABLE<tab>KEY", TABLE one of these letters.
constexpr std::string_view kStateChannel = "acctlock_state";
constexpr char kUsersTag = 'u';
constexpr char kSourcesTag = 's';
constexpr char kUnfamiliarTag = 'x';
constexpr char kFamiliarTag = 'f';

// A migration may rewrite tables: minutes, not the per-request bound.
constexpr std::chrono::milliseconds kMigrationTimeout{std::chrono::minutes(10)};

std::int64_t to_unix(TimePoint time) {
  return time.time_since_epoch().count();
}
TimePoint from_unix(std::int64_t seconds) {
  return TimePoint{Seconds{seconds}};
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// A query parameter in text form; nullopt is SQL NULL.
using Param = std::optional<std::string>;

Param number(std::int64_t value) {
  return std::to_string(value);
}
Param number(TimePoint time) {
  return std::to_string(to_unix(time));
}

// One element list as a PostgreSQL array literal: every element quoted, so
// that no name can be taken for NULL or break out of its element.
class ArrayLiteral {
 public:
  void add(const Param& element) {
    ++size_;
    text_ += text_.size() == 1 ? "" : ",";
    if (!element) {
      text_ += "NULL";
      return;
    }
    text_ += '"';
    for (const char c : *element) {
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += c;
    }
    text_ += '"';
  }
  std::string finish() const { return text_ + "}"; }
  std::size_t size() const { return size_; }

 private:
  std::string text_ = "{";
  std::size_t size_ = 0;
};

std::string bytea_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = "\\x";
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    text += kHex[byte >> 4];
    text += kHex[byte & 15];
  }
  return text;
}

std::string bytea_from_hex(std::string_view text) {
  std::string bytes;
  if (text.substr(0, 2) != "\\x") return bytes;
  const auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 2; i + 1 < text.size(); i += 2) {
    bytes += static_cast<char>(digit(text[i]) * 16 + digit(text[i + 1]));
  }
  return bytes;
}

std::string failure_events_sql() {
  return std::string("('") + to_string(HistoryEvent::failure) + "', '" +
         to_string(HistoryEvent::locked) + "')";
}

std::int64_t sql_limit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(
      limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

}  // namespace

class PostgresqlStore::Connection {
 public:
  // `reads_only`: every statement on it is a read outside a transaction,
  // so one that met a connection broken since (a server restart) is
  // safely run again on a new one.
  Connection(const PostgresqlSettings& settings, bool reads_only)
      : reads_only_(reads_only),
        timeout_(reads_only ? settings.read_timeout : settings.write_timeout),
        conninfo_(settings.conninfo),
        connect_timeout_(settings.connect_timeout) {
    const auto started = std::chrono::steady_clock::now();
    const std::string timeout = std::to_string(settings.connect_timeout.count());
    // Keywords given after the expanded string override it; those before are
    // defaults it may override. So the site's connect_timeout wins, and
    // application_name always says who we are.
    const char* keywords[] = {"connect_timeout", "dbname", "fallback_application_name", nullptr};
    const char* values[] = {timeout.c_str(), settings.conninfo.c_str(), "acctlockd", nullptr};
    conn_ = PQconnectdbParams(keywords, values, 1);
    if (conn_ == nullptr) throw StoreError("postgresql: out of memory connecting");
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = trimmed(PQerrorMessage(conn_));
      PQfinish(conn_);
      if (server_answers(started)) {
        throw StoreError("postgresql: cannot connect: the server refuses this host: " + message);
      }
      throw ServerUnreachable("postgresql: cannot connect: " + message);
    }
    server_ = std::string(PQhost(conn_)) + ":" + PQport(conn_) + "/" + PQdb(conn_);
    // Times and text as this code writes them, whatever the role's defaults.
    PQsetnonblocking(conn_, 1);
    exec("SET client_encoding = 'UTF8'", {}, "configuring the session");
  }
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& server() const { return server_; }
  // The SQLSTATE of the last statement that failed with one ("40P01": a
  // deadlock), for the caller that may run its transaction again.
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  // The last reconnection failed on a server that answered and refused
  // (credentials, the database gone), not on its absence.
  bool refused() const { return refused_; }
  // The last failure was the server's absence (no connection, a timeout,
  // a connection or shutdown error), not a refused statement.
  bool lost() const {
    return broken_ || PQstatus(conn_) != CONNECTION_OK || last_sqlstate_.starts_with("08") ||
           last_sqlstate_.starts_with("57P") || no_answer_;
  }

  [[noreturn]] void fail(std::string_view doing, const std::string& message) const {
    throw StoreError("postgresql " + server_ + ": " + std::string(doing) + ": " + message);
  }

  // Runs one statement (or, without parameters, a script), waiting at most
  // `timeout` for its answer: a server that hangs, or a network that drops
  // packets, must surface as an error well before the PAM module gives up,
  // not hold the writer thread forever. A connection that timed out is
  // dropped (the server rolls back whatever it held) and made anew by the
  // next call. A broken connection (server restarted) is reset first; on
  // the read connection, a statement that met a broken one is run again.
  Result exec(const std::string& sql, const std::vector<Param>& params, std::string_view doing,
              std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
    const auto limit = timeout.value_or(timeout_);
    last_sqlstate_.clear();
    no_answer_ = false;
    reconnect_if_broken(doing);
    Result result = run(sql, values, doing, limit);
    auto status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && reads_only_ &&
        PQstatus(conn_) == CONNECTION_BAD) {
      reconnect_if_broken(doing);
      result = run(sql, values, doing, limit);
      status = PQresultStatus(result.get());
    }
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      const char* message = result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn_);
      const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
      last_sqlstate_ = state ? state : "";
      no_answer_ = !result;
      fail(doing, trimmed(message));
    }
    return result;
  }

  // Rolls back an open transaction; on error paths only, so it never throws
  // and never waits long (a dropped connection needs no rollback).
  void roll_back() noexcept {
    if (broken_ || PQstatus(conn_) != CONNECTION_OK || PQtransactionStatus(conn_) == PQTRANS_IDLE) {
      return;
    }
    try {
      run("ROLLBACK", {}, "rolling back", timeout_);
    } catch (...) {
      broken_ = true;
    }
  }

 private:
  // A connection attempt begun at `started` failed: whether the server
  // answered it (PQping: it accepts connections, so it refused this one:
  // credentials, pg_hba.conf, the database, too many clients) rather than
  // not answering (down, starting up, shutting down, unreachable). An
  // attempt that used up its connect_timeout got no answer: no ping then,
  // which would wait as long again.
  bool server_answers(std::chrono::steady_clock::time_point started) const {
    if (std::chrono::steady_clock::now() - started >=
        connect_timeout_ - std::chrono::milliseconds(500)) {
      return false;
    }
    const std::string timeout = std::to_string(connect_timeout_.count());
    const char* keywords[] = {"connect_timeout", "dbname", "fallback_application_name", nullptr};
    const char* values[] = {timeout.c_str(), conninfo_.c_str(), "acctlockd", nullptr};
    return PQpingParams(keywords, values, 1) == PQPING_OK;
  }

  void reconnect_if_broken(std::string_view doing) {
    if (!broken_ && PQstatus(conn_) == CONNECTION_OK) return;
    const auto started = std::chrono::steady_clock::now();
    PQreset(conn_);  // bounded by connect_timeout
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = trimmed(PQerrorMessage(conn_));
      refused_ = server_answers(started);
      fail(doing, refused_ ? "the server refuses this host: " + message : message);
    }
    refused_ = false;
    broken_ = false;
    PQsetnonblocking(conn_, 1);
  }

  // Waits for the socket to be ready for `events` until `deadline`; throws
  // (and drops the connection) when it passes.
  void wait_for(short events, std::chrono::steady_clock::time_point deadline,
                std::string_view doing, std::chrono::milliseconds limit) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        broken_ = true;
        // Closed now, not at the next request: the server rolls the
        // transaction back when it sees the end of the connection, so the
        // rows it locked are not held from the other hosts until this one
        // next writes (reconnect_if_broken makes the connection anew).
        ::shutdown(PQsocket(conn_), SHUT_RDWR);
        fail(doing, "no answer within " + std::to_string(limit.count()) +
                        " ms; the connection is dropped and made anew for the next request");
      }
      pollfd fd{PQsocket(conn_), events, 0};
      const int ready = poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
      if (ready > 0) return;
      if (ready < 0 && errno != EINTR) fail(doing, std::string("poll: ") + std::strerror(errno));
    }
  }

  Result run(const std::string& sql, const std::vector<const char*>& values, std::string_view doing,
             std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    // Without parameters, the simple protocol: a migration is several
    // statements in one string, which the extended protocol refuses.
    const int sent = values.empty()
                         ? PQsendQuery(conn_, sql.c_str())
                         : PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                             nullptr, values.data(), nullptr, nullptr, 0);
    if (sent == 0) return Result{};
    for (;;) {
      const int flushed = PQflush(conn_);
      if (flushed == 0) break;
      if (flushed < 0) return Result{};
      wait_for(POLLOUT | POLLIN, deadline, doing, limit);
      if (PQconsumeInput(conn_) == 0) return Result{};
    }
    Result first_error;
    Result last;
    for (;;) {
      while (PQisBusy(conn_) != 0) {
        wait_for(POLLIN, deadline, doing, limit);
        if (PQconsumeInput(conn_) == 0) return first_error ? std::move(first_error) : Result{};
      }
      Result next(PQgetResult(conn_));
      if (!next) break;
      const auto status = PQresultStatus(next.get());
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        if (!first_error) first_error = std::move(next);
      } else {
        last = std::move(next);
      }
    }
    if (first_error) return first_error;
    return last;
  }

  bool reads_only_;
  std::chrono::milliseconds timeout_;
  std::string conninfo_;  // for PQping only; never in a message
  std::chrono::seconds connect_timeout_;
  bool refused_ = false;
  bool broken_ = false;  // timed out: dropped at the next call
  PGconn* conn_ = nullptr;
  std::string server_;
  std::string last_sqlstate_;
  bool no_answer_ = false;  // the last failure had no result from the server
};

namespace {

std::int64_t int64(const Result& result, int row, int column) {
  return std::stoll(PQgetvalue(result.get(), row, column));
}
bool is_null(const Result& result, int row, int column) {
  return PQgetisnull(result.get(), row, column) != 0;
}
std::string text(const Result& result, int row, int column) {
  return std::string(PQgetvalue(result.get(), row, column),
                     static_cast<std::size_t>(PQgetlength(result.get(), row, column)));
}
bool boolean(const Result& result, int row, int column) {
  return PQgetvalue(result.get(), row, column)[0] == 't';
}

std::uint32_t uint32(const Result& result, int row, int column, const std::string& server) {
  const std::int64_t value = int64(result, row, column);
  if (value < 0 || value > std::numeric_limits<std::uint32_t>::max()) {
    throw StoreError("postgresql " + server + ": value " + std::to_string(value) + " in column " +
                     PQfname(result.get(), column) + " is out of range");
  }
  return static_cast<std::uint32_t>(value);
}

// The state columns (kStateColumns) of row `r`, read from column 1 on
// (column 0 is the key). `owner` names the row in an error.
UserState state_from_row(const Result& rows, int r, const std::string& owner,
                         const std::string& server) {
  UserState state;
  state.failures = uint32(rows, r, 1, server);
  state.last_failure = from_unix(int64(rows, r, 2));
  state.level = uint32(rows, r, 3, server);
  state.last_lock_end = from_unix(int64(rows, r, 4));
  if (boolean(rows, r, 5)) {
    FailureLock& failure_lock = state.failure_lock.emplace();
    failure_lock.since = from_unix(int64(rows, r, 6));
    if (!is_null(rows, r, 7)) failure_lock.until = from_unix(int64(rows, r, 7));
  }
  if (boolean(rows, r, 8)) {
    ManualLock& manual_lock = state.manual_lock.emplace();
    manual_lock.reason = text(rows, r, 9);
    manual_lock.since = from_unix(int64(rows, r, 10));
    manual_lock.admin_uid = uint32(rows, r, 11, server);
    if (!is_null(rows, r, 12)) manual_lock.until = from_unix(int64(rows, r, 12));
  }
  state.earlier_failures = decode_failure_times(text(rows, r, 13), owner);
  return state;
}

// The columns state_from_row() reads, after the key.
constexpr const char* kStateColumns =
    "failures, last_failure, level, last_lock_end, locked, lock_since, lock_until, manual, "
    "manual_reason, manual_since, manual_admin_uid, manual_until, earlier_failures";

// How a failure this host counted came out on the merged row: it locked the
// account if it raised the level and left a failure lock; it counted if it
// changed the row (a failure while locked leaves the row as it was).
void judge_failure(const FailureStep& step, const UserState& before, const UserState& after,
                   const std::vector<HistoryEntry>& history, std::vector<MergedFailure>& failures) {
  if (step.event >= history.size()) return;
  const HistoryEntry& recorded = history[step.event];
  MergedFailure merged;
  merged.event = step.event;
  const bool locked_now = after.failure_lock && after.level != before.level;
  merged.kind = locked_now ? HistoryEvent::locked : HistoryEvent::failure;
  merged.detail = locked_now || after != before ? step.counted_detail : step.while_locked_detail;
  if (merged.kind == recorded.event && merged.detail == recorded.detail) return;
  merged.failures = after.failures;
  merged.level = after.level;
  if (after.failure_lock) merged.locked_until = after.failure_lock->until;
  failures.push_back(std::move(merged));
}

// A shared store's merge (StoreBatch::merge_*) for one state table: locks
// the rows of the batch's keys that have steps, as they are now (an empty
// placeholder first for a key no host has written yet, so that two hosts
// creating the same row wait for each other too), runs this host's steps
// on each, and turns the batch's puts and deletes into the merged rows.
// Keys are locked in byte order, the same on every host, so that two hosts'
// batches cannot wait for each other in a cycle.
// A user row's failures (StateMerge::failures) are judged on the merged
// row as it runs: those whose outcome differs from the history row this
// host made go to `failures`.
void merge_state_rows(PostgresqlStore::Connection& db, const std::string& table,
                      const std::string& key_column, const std::string& owner,
                      const std::map<std::string, StateMerge>& merges,
                      std::vector<std::pair<std::string, UserState>>& puts,
                      std::vector<std::string>& deletes, const std::vector<HistoryEntry>& history,
                      std::vector<MergedFailure>& failures) {
  if (merges.empty()) return;
  constexpr std::string_view doing = "commit";
  // The keys both staged and merged, in byte order (a std::set of them).
  std::set<std::string, std::less<>> merged_keys;
  for (const auto& [key, state] : puts) {
    if (merges.contains(key)) merged_keys.insert(key);
  }
  for (const auto& key : deletes) {
    if (merges.contains(key)) merged_keys.insert(key);
  }
  if (merged_keys.empty()) return;
  ArrayLiteral keys;
  for (const auto& key : merged_keys) keys.add(key);
  const std::string key_array = keys.finish();
  db.exec("INSERT INTO " + table + " (" + key_column +
              ", failures, last_failure, level, last_lock_end, locked, manual) "
              "SELECT k, 0, 0, 0, 0, false, false FROM unnest($1::text[]) AS k ORDER BY k "
              "COLLATE \"C\" ON CONFLICT DO NOTHING",
          {key_array}, doing);
  Result rows = db.exec("SELECT " + key_column + ", " + kStateColumns + " FROM " + table +
                            " WHERE " + key_column + " = ANY($1::text[]) ORDER BY " + key_column +
                            " COLLATE \"C\" FOR UPDATE",
                        {key_array}, doing);
  std::map<std::string, UserState, std::less<>> current;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    std::string key = text(rows, r, 0);
    UserState state = state_from_row(rows, r, owner + " " + key, db.server());
    current.emplace(std::move(key), std::move(state));
  }
  const auto merged = [&](const std::string& key, const StateMerge& merge) {
    UserState state;
    if (const auto found = current.find(key); found != current.end()) state = found->second;
    auto failure = merge.failures.begin();
    for (std::size_t i = 0; i < merge.changes.size(); ++i) {
      if (failure == merge.failures.end() || failure->change != i) {
        merge.changes[i](state);
        continue;
      }
      const UserState before = state;
      merge.changes[i](state);
      judge_failure(*failure, before, state, history, failures);
      ++failure;
    }
    return state;
  };
  std::vector<std::pair<std::string, UserState>> new_puts;
  std::vector<std::string> new_deletes;
  for (auto& [key, state] : puts) {
    const auto merge = merges.find(key);
    new_puts.emplace_back(key, merge == merges.end() ? state : merged(key, merge->second));
  }
  for (const auto& key : deletes) {
    const auto merge = merges.find(key);
    if (merge == merges.end()) {
      new_deletes.push_back(key);
      continue;
    }
    // Deleted here because it became idle: only if no other host's step
    // made it something else meanwhile. (A placeholder merges to the empty
    // state, which is what an idle row deleted on its first step is.)
    UserState state = merged(key, merge->second);
    if (state == merge->second.result || state == UserState{}) {
      new_deletes.push_back(key);
    } else {
      new_puts.emplace_back(key, std::move(state));
    }
  }
  puts = std::move(new_puts);
  deletes = std::move(new_deletes);
}

// Inserts or replaces rows of user_state or source_state (the same columns
// after the key), all in one statement.
void put_state_rows(PostgresqlStore::Connection& db, const std::string& table,
                    const std::string& key_column,
                    const std::vector<std::pair<std::string, UserState>>& rows) {
  if (rows.empty()) return;
  constexpr std::string_view doing = "commit";
  ArrayLiteral columns[14];
  for (const auto& [key, state] : rows) {
    columns[0].add(key);
    columns[1].add(number(state.failures));
    columns[2].add(number(state.last_failure));
    columns[3].add(number(state.level));
    columns[4].add(number(state.last_lock_end));
    columns[5].add(state.failure_lock ? "t" : "f");
    columns[6].add(state.failure_lock ? number(state.failure_lock->since) : Param{});
    columns[7].add(state.failure_lock && state.failure_lock->until
                       ? number(*state.failure_lock->until)
                       : Param{});
    columns[8].add(state.manual_lock ? "t" : "f");
    columns[9].add(state.manual_lock ? Param{state.manual_lock->reason} : Param{});
    columns[10].add(state.manual_lock ? number(state.manual_lock->since) : Param{});
    columns[11].add(state.manual_lock ? number(state.manual_lock->admin_uid) : Param{});
    columns[12].add(state.manual_lock && state.manual_lock->until
                        ? number(*state.manual_lock->until)
                        : Param{});
    columns[13].add(encode_failure_times(state.earlier_failures));
  }
  std::vector<Param> params;
  for (const auto& column : columns) params.emplace_back(column.finish());
  db.exec(
      "INSERT INTO " + table + " (" + key_column +
          ", failures, last_failure, level, last_lock_end, "
          "locked, lock_since, lock_until, manual, manual_reason, manual_since, "
          "manual_admin_uid, manual_until, earlier_failures) SELECT * FROM unnest($1::text[], "
          "$2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::boolean[], $7::bigint[], "
          "$8::bigint[], $9::boolean[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], "
          "$14::text[]) "
          "ON CONFLICT (" +
          key_column +
          ") DO UPDATE SET failures = EXCLUDED.failures, "
          "last_failure = EXCLUDED.last_failure, level = EXCLUDED.level, "
          "last_lock_end = EXCLUDED.last_lock_end, locked = EXCLUDED.locked, "
          "lock_since = EXCLUDED.lock_since, lock_until = EXCLUDED.lock_until, "
          "manual = EXCLUDED.manual, manual_reason = EXCLUDED.manual_reason, "
          "manual_since = EXCLUDED.manual_since, manual_admin_uid = EXCLUDED.manual_admin_uid, "
          "manual_until = EXCLUDED.manual_until, earlier_failures = EXCLUDED.earlier_failures",
      params, doing);
}

void migrate(PostgresqlStore::Connection& db) {
  db.exec("BEGIN", {}, "starting a schema migration");
  try {
    db.exec(kMigrationLock, {}, "locking the schema", kMigrationTimeout);
    int version = 0;
    Result exists =
        db.exec("SELECT to_regclass('acctlock_schema') IS NOT NULL", {}, "reading the schema");
    if (boolean(exists, 0, 0)) {
      Result row = db.exec("SELECT version FROM acctlock_schema", {}, "reading the schema version");
      if (PQntuples(row.get()) != 1)
        db.fail("reading the schema version", "acctlock_schema has no single row");
      version = static_cast<int>(int64(row, 0, 0));
    } else {
      Result ours = db.exec(
          "SELECT to_regclass('user_state') IS NOT NULL OR "
          "to_regclass('history') IS NOT NULL",
          {}, "reading the schema");
      if (boolean(ours, 0, 0)) {
        db.fail("checking the schema",
                "tables user_state or history exist without acctlock_schema: not an acctlock "
                "database, or one set up by hand; acctlockd leaves it as it is");
      }
      db.exec("CREATE TABLE acctlock_schema (version integer NOT NULL)", {}, "creating the schema");
      db.exec("INSERT INTO acctlock_schema VALUES (0)", {}, "creating the schema");
    }
    if (version > PostgresqlStore::kSchemaVersion) {
      db.fail("checking the schema", "created by a newer acctlock (schema version " +
                                         std::to_string(version) + ", this one knows up to " +
                                         std::to_string(PostgresqlStore::kSchemaVersion) + ")");
    }
    if (version < 0)
      db.fail("checking the schema", "invalid schema version " + std::to_string(version));
    for (; version < PostgresqlStore::kSchemaVersion; ++version) {
      const std::string doing = "migrating the schema to version " + std::to_string(version + 1);
      db.exec(kMigrations[version], {}, doing, kMigrationTimeout);
      db.exec("UPDATE acctlock_schema SET version = $1", {number(version + 1)}, doing);
    }
    db.exec("COMMIT", {}, "finishing the schema migration");
  } catch (...) {
    db.roll_back();
    throw;
  }
}

}  // namespace

PostgresqlStore::PostgresqlStore(std::string host_name, std::string server,
                                 PostgresqlSettings settings)
    : host_name_(std::move(host_name)),
      server_(std::move(server)),
      settings_(std::move(settings)) {}

PostgresqlStore::~PostgresqlStore() = default;

namespace {

// The server as the journal names it before any connection is made:
// host:port/database from the connection string (libpq's defaults where it
// says nothing), never the password.
std::string describe_server(const std::string& conninfo) {
  std::string host;
  std::string port;
  std::string database;
  std::string user;
  if (PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr)) {
    for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
      if (option->val == nullptr || *option->val == '\0') continue;
      const std::string_view keyword(option->keyword);
      if (keyword == "host" || (keyword == "hostaddr" && host.empty())) host = option->val;
      if (keyword == "port") port = option->val;
      if (keyword == "dbname") database = option->val;
      if (keyword == "user") user = option->val;
    }
    PQconninfoFree(options);
  }
  if (host.empty()) host = "localhost";
  host = host.substr(0, host.find(','));
  if (port.empty()) port = "5432";
  if (database.empty()) database = user;
  return host + ":" + port.substr(0, port.find(',')) + "/" + database;
}

}  // namespace

std::unique_ptr<PostgresqlStore> PostgresqlStore::open(const PostgresqlSettings& settings) {
  if (settings.host_name.empty()) throw StoreError("postgresql: the host name is empty");
  std::unique_ptr<PostgresqlStore> store(
      new PostgresqlStore(settings.host_name, describe_server(settings.conninfo), settings));
  // Made now, whether or not the server answers: it holds the local copy of
  // the fleet's rows that a start apart enforces with.
  if (!settings.outbox_path.empty()) {
    store->outbox_ = std::make_unique<LocalOutbox>(settings.outbox_path);
  }
  {
    std::lock_guard lock(store->write_mutex_);
    try {
      store->first_contact();
      store->server_ = store->writer_->server();
    } catch (const ServerUnreachable& e) {
      // A host restarted during an outage starts and enforces (docs/fleet.md,
      // "Starting apart"); a server that answered and refused stops the
      // start (StoreError, not caught here): that is a configuration to fix.
      if (!store->outbox_) throw;
      store->go_apart(e.what());
      std::lock_guard status_lock(store->status_mutex_);
      store->status_.started_apart = true;
    }
  }
  // Events kept while the server was away, from before a restart: this host
  // is still apart until they are replayed.
  if (store->outbox_ && store->outbox_->size() > 0) {
    if (!store->apart_) {
      store->go_apart("events from before the restart are still waiting to be replayed");
    }
    std::lock_guard status_lock(store->status_mutex_);
    store->status_.waiting = store->outbox_->size();
  }
  return store;
}

void PostgresqlStore::first_contact() {
  try {
    if (!writer_) writer_ = std::make_unique<Connection>(settings_, false);
    migrate(*writer_);
    if (settings_.register_this_host) {
      writer_->exec(
          "INSERT INTO fleet_host (host) VALUES ($1) ON CONFLICT (host) DO UPDATE SET "
          "last_start = now()",
          {host_name_}, "registering this host");
    }
    std::lock_guard lock(read_mutex_);
    if (!reader_) reader_ = std::make_unique<Connection>(settings_, true);
  } catch (const ServerUnreachable&) {
    throw;
  } catch (const StoreError& e) {
    // A migration or registration cut short by the server's absence (a
    // timeout, a lost connection) is an outage too; anything else it said
    // is a refusal (a newer schema, someone else's tables, a permission).
    if (writer_ && writer_->lost() && !writer_->refused()) throw ServerUnreachable(e.what());
    throw;
  }
  contacted_ = true;
}

PostgresqlStore::Connection& PostgresqlStore::writer() {
  if (!writer_) {
    throw StoreError("postgresql " + server_ +
                     ": not connected yet (this host started apart from the fleet's database)");
  }
  return *writer_;
}

PostgresqlStore::Connection& PostgresqlStore::reader() {
  if (!reader_) {
    throw StoreError("postgresql " + server_ +
                     ": not connected yet (this host started apart from the fleet's database)");
  }
  return *reader_;
}

bool PostgresqlStore::apart_now() const {
  std::lock_guard status_lock(status_mutex_);
  return status_.apart;
}

void PostgresqlStore::note_problem(const std::string& problem, bool refused) {
  std::lock_guard status_lock(status_mutex_);
  status_.problem = problem;
  status_.refused = refused;
}

std::optional<TimePoint> PostgresqlStore::local_copy_written_at() {
  if (!outbox_) return std::nullopt;
  return outbox_->copy_written_at();
}

// Apart, the state comes from the local copy: the fleet's rows as this host
// last heard them, with its own events since (which the server does not
// have yet). Read from the server, it replaces the copy.
std::vector<std::pair<std::string, UserState>> PostgresqlStore::load_states() {
  if (outbox_ && apart_now()) return outbox_->copied_rows(SharedTable::users);
  auto rows = load_state_table("user_state", "user_name", "user", "reading user states");
  if (outbox_) outbox_->replace_rows(SharedTable::users, rows);
  return rows;
}

std::vector<std::pair<std::string, UserState>> PostgresqlStore::load_sources() {
  if (outbox_ && apart_now()) return outbox_->copied_rows(SharedTable::sources);
  auto rows = load_state_table("source_state", "source", "source", "reading source states");
  if (outbox_) outbox_->replace_rows(SharedTable::sources, rows);
  return rows;
}

std::vector<std::pair<std::string, UserState>> PostgresqlStore::load_unfamiliar_states() {
  if (outbox_ && apart_now()) return outbox_->copied_rows(SharedTable::unfamiliar);
  auto rows = load_state_table("unfamiliar_state", "user_name", "unfamiliar-source state of user",
                               "reading unfamiliar-source states");
  if (outbox_) outbox_->replace_rows(SharedTable::unfamiliar, rows);
  return rows;
}

std::vector<std::pair<std::string, std::vector<FamiliarSource>>>
PostgresqlStore::load_familiar_sources() {
  if (outbox_ && apart_now()) return outbox_->copied_familiar();
  auto users = load_familiar_table();
  if (outbox_) outbox_->replace_familiar(users);
  return users;
}

std::vector<std::pair<std::string, std::vector<FamiliarSource>>>
PostgresqlStore::load_familiar_table() {
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT user_name, source, last_success FROM familiar_source ORDER BY user_name COLLATE "
      "\"C\", last_success DESC, source COLLATE \"C\"",
      {}, "reading familiar sources");
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> users;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    std::string user = text(rows, r, 0);
    if (users.empty() || users.back().first != user)
      users.emplace_back(std::move(user), std::vector<FamiliarSource>{});
    users.back().second.push_back(FamiliarSource{text(rows, r, 1), from_unix(int64(rows, r, 2))});
  }
  return users;
}

std::vector<std::pair<std::string, UserState>> PostgresqlStore::load_state_table(
    std::string_view table, std::string_view key, std::string_view owner, std::string_view doing) {
  std::lock_guard lock(read_mutex_);
  const std::string key_column(key);
  Result rows = reader().exec(
      "SELECT " + key_column +
          ", failures, last_failure, level, last_lock_end, locked, lock_since, "
          "lock_until, manual, manual_reason, manual_since, manual_admin_uid, manual_until, "
          "earlier_failures FROM " +
          std::string(table) + " ORDER BY " + key_column + " COLLATE \"C\"",
      {}, doing);
  std::vector<std::pair<std::string, UserState>> states;
  const int count = PQntuples(rows.get());
  states.reserve(static_cast<std::size_t>(count));
  for (int r = 0; r < count; ++r) {
    std::string name = text(rows, r, 0);
    UserState state = state_from_row(rows, r, std::string(owner) + " " + name, server_);
    states.emplace_back(std::move(name), std::move(state));
  }
  return states;
}

CommitOutcome PostgresqlStore::commit(const StoreBatch& batch) {
  if (batch.empty() && !batch.forget_answered_before) return {};
  std::lock_guard lock(write_mutex_);
  if (!apart_) {
    try {
      return commit_with_retries(batch);
    } catch (const StoreError& e) {
      // A refused statement is reported as it is; only the server's absence
      // sends this host apart.
      if (settings_.outbox_path.empty() || !writer().lost()) throw;
      go_apart(e.what());
    }
  }
  // The rows as this host now holds them go to the local copy with their
  // events, in one transaction: a restart apart finds both or neither.
  std::vector<SharedStateChange> rows;
  const auto kept = [&rows](SharedTable table, const std::string& key,
                            std::optional<UserState> state) {
    SharedStateChange& row = rows.emplace_back();
    row.table = table;
    row.key = key;
    row.state = std::move(state);
  };
  for (const auto& [key, state] : batch.put_states) kept(SharedTable::users, key, state);
  for (const auto& key : batch.delete_states) kept(SharedTable::users, key, std::nullopt);
  for (const auto& [key, state] : batch.put_sources) kept(SharedTable::sources, key, state);
  for (const auto& key : batch.delete_sources) kept(SharedTable::sources, key, std::nullopt);
  for (const auto& [key, state] : batch.put_unfamiliar_states) {
    kept(SharedTable::unfamiliar, key, state);
  }
  for (const auto& key : batch.delete_unfamiliar_states) {
    kept(SharedTable::unfamiliar, key, std::nullopt);
  }
  for (const auto& [user, sources] : batch.put_familiar_sources) {
    SharedStateChange& row = rows.emplace_back();
    row.table = SharedTable::familiar;
    row.key = user;
    row.familiar = sources;
  }
  outbox_->append(batch.replayable, rows);
  std::lock_guard status_lock(status_mutex_);
  status_.waiting = outbox_->size();
  // Apart, this host's view is all there is until the replay.
  return {};
}

void PostgresqlStore::go_apart(const std::string& problem) {
  apart_ = true;
  std::lock_guard status_lock(status_mutex_);
  status_.apart = true;
  status_.apart_since = wall_clock_now();
  status_.problem = problem;
}

std::optional<FleetStatus> PostgresqlStore::fleet_status() const {
  std::lock_guard status_lock(status_mutex_);
  return status_;
}

CommitOutcome PostgresqlStore::commit_with_retries(const StoreBatch& batch) {
  // Two hosts' transactions may still deadlock (a user's row and its
  // unfamiliar-source row, locked in two statements): the server aborts one,
  // which runs again; the steps are pure, so running them again is safe.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    try {
      return commit_once(batch);
    } catch (const StoreError&) {
      const std::string& state = writer().last_sqlstate();
      const bool retry = state == "40P01" || state == "40001";
      if (!retry || attempt == kAttempts) throw;
    }
  }
}

CommitOutcome PostgresqlStore::commit_once(const StoreBatch& batch) {
  Connection& db = writer();
  db.exec("BEGIN", {}, "commit");
  try {
    CommitOutcome outcome = write_batch(db, batch);
    db.exec("COMMIT", {}, "commit");
    return outcome;
  } catch (...) {
    db.roll_back();
    throw;
  }
}

CommitOutcome PostgresqlStore::write_batch(Connection& db, const StoreBatch& batch) {
  constexpr std::string_view doing = "commit";
  CommitOutcome outcome;
  {
    // Each state table: this host's steps on the rows as the fleet left
    // them (merge_state_rows), then the writes.
    auto put_states = batch.put_states;
    auto delete_states = batch.delete_states;
    auto put_sources = batch.put_sources;
    auto delete_sources = batch.delete_sources;
    auto put_unfamiliar = batch.put_unfamiliar_states;
    auto delete_unfamiliar = batch.delete_unfamiliar_states;
    merge_state_rows(db, "user_state", "user_name", "user", batch.merge_states, put_states,
                     delete_states, batch.history, outcome.failures);
    merge_state_rows(db, "source_state", "source", "source", batch.merge_sources, put_sources,
                     delete_sources, batch.history, outcome.failures);
    merge_state_rows(db, "unfamiliar_state", "user_name", "unfamiliar-source state of user",
                     batch.merge_unfamiliar_states, put_unfamiliar, delete_unfamiliar,
                     batch.history, outcome.failures);
    put_state_rows(db, "user_state", "user_name", put_states);
    put_state_rows(db, "source_state", "source", put_sources);
    if (!delete_states.empty()) {
      ArrayLiteral users;
      for (const auto& user : delete_states) users.add(user);
      db.exec("DELETE FROM user_state WHERE user_name = ANY($1::text[])", {users.finish()}, doing);
    }
    if (!delete_sources.empty()) {
      ArrayLiteral sources;
      for (const auto& source : delete_sources) sources.add(source);
      db.exec("DELETE FROM source_state WHERE source = ANY($1::text[])", {sources.finish()}, doing);
    }
    put_state_rows(db, "unfamiliar_state", "user_name", put_unfamiliar);
    if (!delete_unfamiliar.empty()) {
      ArrayLiteral users;
      for (const auto& user : delete_unfamiliar) users.add(user);
      db.exec("DELETE FROM unfamiliar_state WHERE user_name = ANY($1::text[])", {users.finish()},
              doing);
    }
    if (!batch.put_familiar_sources.empty()) {
      // Each user's list replaces what was stored: delete, then insert.
      ArrayLiteral users;
      ArrayLiteral rows[3];
      for (const auto& [user, sources] : batch.put_familiar_sources) {
        users.add(user);
        for (const FamiliarSource& source : sources) {
          rows[0].add(user);
          rows[1].add(source.key);
          rows[2].add(number(source.last_success));
        }
      }
      db.exec("DELETE FROM familiar_source WHERE user_name = ANY($1::text[])", {users.finish()},
              doing);
      std::vector<Param> params;
      for (const auto& column : rows) params.emplace_back(column.finish());
      db.exec(
          "INSERT INTO familiar_source (user_name, source, last_success) SELECT * FROM "
          "unnest($1::text[], $2::text[], $3::bigint[])",
          params, doing);
    }
    // The history rows of failures the merged rows decided otherwise say
    // what happened on the fleet's rows. (An aggregate row is left as it
    // is: it counts events of one kind; the event still says it.)
    std::vector<HistoryEntry> relabelled;
    if (!outcome.failures.empty()) {
      relabelled = batch.history;
      for (const MergedFailure& failure : outcome.failures) {
        HistoryEntry& entry = relabelled[failure.event];
        if (entry.is_aggregate()) continue;
        entry.event = failure.kind;
        entry.detail = failure.detail;
      }
    }
    const std::vector<HistoryEntry>& history =
        outcome.failures.empty() ? batch.history : relabelled;
    const std::vector<HistoryEntry> aggregates = merge_aggregate_entries(history);
    if (!aggregates.empty()) {
      // Each key's events are added to its aggregate row, or start one: one
      // statement for the batch (the keys in it are distinct).
      ArrayLiteral columns[11];
      for (const HistoryEntry& entry : aggregates) {
        columns[0].add(number(*entry.first_time));
        columns[1].add(number(entry.time));
        columns[2].add(number(static_cast<std::int64_t>(entry.count)));
        columns[3].add(entry.user);
        columns[4].add(std::string(to_string(entry.event)));
        columns[5].add(entry.service);
        columns[6].add(entry.rhost);
        columns[7].add(entry.tty);
        columns[8].add(entry.ruser);
        columns[9].add(entry.detail);
        columns[10].add(entry.peer_uid ? number(*entry.peer_uid) : Param{});
      }
      std::vector<Param> params;
      for (const auto& column : columns) params.emplace_back(column.finish());
      params.emplace_back(host_name_);
      db.exec(
          "WITH f AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], "
          "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[]) "
          "WITH ORDINALITY AS x(t0, t1, c, u, e, s, r, y, ru, d, p, n)), "
          "folded AS (UPDATE history h SET events = h.events + f.c, time = greatest(h.time, f.t1), "
          "first_time = least(h.first_time, f.t0), tty = f.y, ruser = f.ru, detail = f.d FROM f "
          "WHERE h.first_time IS NOT NULL AND h.host = $12 AND h.user_name = f.u AND "
          "h.event = f.e AND h.service = f.s AND h.rhost = f.r AND "
          "h.peer_uid IS NOT DISTINCT FROM f.p RETURNING f.n) "
          "INSERT INTO history (time, user_name, event, service, rhost, tty, ruser, admin_uid, "
          "detail, host, peer_uid, events, first_time) SELECT t1, u, e, s, r, y, ru, NULL, d, $12, "
          "p, c, t0 FROM f WHERE n NOT IN (SELECT n FROM folded) ORDER BY n",
          params, doing);
    }
    if (std::any_of(history.begin(), history.end(),
                    [](const HistoryEntry& entry) { return !entry.is_aggregate(); })) {
      ArrayLiteral columns[11];
      for (const HistoryEntry& entry : history) {
        if (entry.is_aggregate()) continue;
        columns[9].add(entry.peer_uid ? number(*entry.peer_uid) : Param{});
        columns[10].add(number(static_cast<std::int64_t>(entry.count)));
        columns[0].add(number(entry.time));
        columns[1].add(entry.user);
        columns[2].add(std::string(to_string(entry.event)));
        columns[3].add(entry.service);
        columns[4].add(entry.rhost);
        columns[5].add(entry.tty);
        columns[6].add(entry.ruser);
        columns[7].add(entry.admin_uid ? number(*entry.admin_uid) : Param{});
        columns[8].add(entry.detail);
      }
      std::vector<Param> params;
      for (const auto& column : columns) params.emplace_back(column.finish());
      params.emplace_back(host_name_);
      // WITH ORDINALITY: ids follow the batch's order, as SQLite's do.
      db.exec(
          "INSERT INTO history (time, user_name, event, service, rhost, tty, ruser, admin_uid, "
          "detail, peer_uid, events, host) SELECT t, u, e, s, r, y, ru, a, d, p, c, $12 FROM "
          "unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
          "$7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[]) WITH ORDINALITY "
          "AS x(t, u, e, s, r, y, ru, a, d, p, c, n) ORDER BY n",
          params, doing);
    }
    if (!batch.answered.empty()) {
      ArrayLiteral columns[6];
      for (const AnsweredEvent& answered : batch.answered) {
        // bigint is signed: the id's bits are kept, as in SQLite.
        columns[0].add(number(static_cast<std::int64_t>(answered.id)));
        columns[1].add(number(answered.peer_uid));
        columns[2].add(answered.user);
        columns[3].add(number(answered.type));
        columns[4].add(number(answered.time));
        columns[5].add(bytea_hex(answered.answer_frame));
      }
      std::vector<Param> params;
      for (const auto& column : columns) params.emplace_back(column.finish());
      params.emplace_back(host_name_);
      db.exec(
          "INSERT INTO answered_event (host, event_id, peer_uid, user_name, type, time, answer) "
          "SELECT $7, i, p, u, t, w, a FROM unnest($1::bigint[], $2::bigint[], $3::text[], "
          "$4::integer[], $5::bigint[], $6::bytea[]) WITH ORDINALITY AS x(i, p, u, t, w, a, n) "
          "ORDER BY n",
          params, doing);
    }
    if (batch.forget_answered_before) {
      db.exec(
          "DELETE FROM answered_event WHERE host = $1 AND (time < $2 OR seq <= (SELECT seq FROM "
          "answered_event WHERE host = $1 ORDER BY seq DESC OFFSET $3 LIMIT 1))",
          {host_name_, number(*batch.forget_answered_before),
           number(static_cast<std::int64_t>(kMaxAnsweredEvents))},
          doing);
    }
    // Every host (this one too) reads back the rows this commit changed:
    // delivered when it commits, in commit order (watch_shared_state).
    ArrayLiteral tables;
    ArrayLiteral keys;
    const auto announce = [&](char table, const std::string& key) {
      tables.add(std::string(1, table));
      keys.add(key);
    };
    for (const auto& [key, state] : put_states) announce(kUsersTag, key);
    for (const auto& key : delete_states) announce(kUsersTag, key);
    for (const auto& [key, state] : put_sources) announce(kSourcesTag, key);
    for (const auto& key : delete_sources) announce(kSourcesTag, key);
    for (const auto& [key, state] : put_unfamiliar) announce(kUnfamiliarTag, key);
    for (const auto& key : delete_unfamiliar) announce(kUnfamiliarTag, key);
    for (const auto& [key, list] : batch.put_familiar_sources) announce(kFamiliarTag, key);
    if (tables.size() > 0) {
      db.exec("SELECT count(pg_notify('" + std::string(kStateChannel) +
                  "', $1 || chr(9) || t || chr(9) || k)) FROM unnest($2::text[], $3::text[]) AS "
                  "x(t, k)",
              {host_name_, tables.finish(), keys.finish()}, doing);
    }
  }
  return outcome;
}

std::optional<std::vector<LocalOutbox::Entry>> PostgresqlStore::events_to_replay(
    std::size_t limit) {
  std::lock_guard lock(write_mutex_);
  if (!apart_) return std::vector<LocalOutbox::Entry>{};
  if (!contacted_) {
    // Started apart: the first contact checks (and migrates) the schema and
    // registers this host before anything is replayed.
    try {
      first_contact();
    } catch (const ServerUnreachable& e) {
      note_problem(e.what(), false);
      return std::nullopt;
    } catch (const StoreError& e) {
      note_problem(e.what(), true);
      return std::nullopt;
    }
  }
  std::int64_t through = 0;
  try {
    Result row = writer().exec(
        "SELECT outbox_replayed_through FROM fleet_host WHERE host = $1 AND outbox_generation = $2",
        {host_name_, outbox_->generation()}, "reading how far the outbox was replayed");
    if (PQntuples(row.get()) == 1) through = int64(row, 0, 0);
  } catch (const StoreError& e) {
    if (!writer().lost()) throw;
    note_problem(e.what(), writer().refused());
    return std::nullopt;
  }
  // What the server already has (a crash between its commit and the local
  // delete) goes without being played again.
  if (through > 0) outbox_->remove_through(through);
  auto entries = outbox_->oldest(limit);
  std::lock_guard status_lock(status_mutex_);
  status_.waiting = outbox_->size();
  if (entries.empty()) {
    apart_ = false;
    status_ = FleetStatus{};
  }
  return entries;
}

void PostgresqlStore::commit_replayed(const StoreBatch& batch, std::int64_t through) {
  std::lock_guard lock(write_mutex_);
  Connection& db = writer();
  constexpr std::string_view doing = "replaying the outbox";
  db.exec("BEGIN", {}, doing);
  try {
    // The row of this host, locked: one replay at a time, and the check
    // that these events are not in already.
    db.exec(
        "INSERT INTO fleet_host (host) VALUES ($1) ON CONFLICT (host) DO NOTHING", {host_name_},
        doing);
    Result row = db.exec(
        "SELECT outbox_generation IS NOT DISTINCT FROM $2 AND outbox_replayed_through >= $3 FROM "
        "fleet_host WHERE host = $1 FOR UPDATE",
        {host_name_, outbox_->generation(), number(through)}, doing);
    if (!boolean(row, 0, 0)) {
      write_batch(db, batch);
      db.exec(
          "UPDATE fleet_host SET outbox_generation = $2, outbox_replayed_through = $3 WHERE host = "
          "$1",
          {host_name_, outbox_->generation(), number(through)}, doing);
    }
    db.exec("COMMIT", {}, doing);
  } catch (const StoreError& e) {
    db.roll_back();
    // No answer in time (the load, or the server gone again): the caller
    // tries again, with a smaller batch (daemon/fleet/outbox_replay.h).
    if (db.lost() && !db.refused()) throw ServerUnreachable(e.what());
    throw;
  } catch (...) {
    db.roll_back();
    throw;
  }
  outbox_->remove_through(through);
  std::lock_guard status_lock(status_mutex_);
  status_.waiting = outbox_->size();
}

std::set<std::uint64_t> PostgresqlStore::answered_event_ids(
    const std::vector<std::uint64_t>& ids) {
  std::set<std::uint64_t> answered;
  if (ids.empty()) return answered;
  ArrayLiteral array;
  // bigint is signed: the ids' bits are kept, as the commit stores them.
  for (const std::uint64_t id : ids) array.add(number(static_cast<std::int64_t>(id)));
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT event_id FROM answered_event WHERE host = $1 AND event_id = ANY($2::bigint[])",
      {host_name_, array.finish()}, "reading which outbox events the server already has");
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    answered.insert(static_cast<std::uint64_t>(int64(rows, r, 0)));
  }
  return answered;
}

void PostgresqlStore::read_shared_rows_again(const SharedRowKeys& keys) {
  if (listener_) listener_->inject(payloads_of(keys));
}

std::vector<SharedStateChange> PostgresqlStore::read_shared_rows(const SharedRowKeys& keys) {
  return read_changed_rows(payloads_of(keys));
}

std::vector<std::string> PostgresqlStore::payloads_of(const SharedRowKeys& keys) const {
  std::vector<std::string> payloads;
  payloads.reserve(keys.size());
  for (const auto& [table, key] : keys) {
    char tag = kUsersTag;
    switch (table) {
      case SharedTable::users:
        tag = kUsersTag;
        break;
      case SharedTable::sources:
        tag = kSourcesTag;
        break;
      case SharedTable::unfamiliar:
        tag = kUnfamiliarTag;
        break;
      case SharedTable::familiar:
        tag = kFamiliarTag;
        break;
    }
    payloads.push_back(host_name_ + '\t' + tag + '\t' + key);
  }
  return payloads;
}

std::vector<AnsweredEvent> PostgresqlStore::load_answered(TimePoint since) {
  // Started apart: the ids answered before the restart are on the server;
  // a resend of one across the restart counts again (docs/fleet.md).
  if (!contacted_) return {};
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT event_id, peer_uid, user_name, type, time, answer FROM answered_event "
      "WHERE host = $1 AND time >= $2 ORDER BY seq DESC LIMIT $3",
      {host_name_, number(since), number(static_cast<std::int64_t>(kMaxAnsweredEvents))},
      "reading answered events");
  std::vector<AnsweredEvent> out;
  for (int r = PQntuples(rows.get()) - 1; r >= 0; --r) {
    AnsweredEvent answered;
    answered.id = static_cast<std::uint64_t>(int64(rows, r, 0));
    answered.peer_uid = uint32(rows, r, 1, server_);
    answered.user = text(rows, r, 2);
    answered.type = static_cast<std::uint8_t>(uint32(rows, r, 3, server_));
    answered.time = from_unix(int64(rows, r, 4));
    answered.answer_frame = bytea_from_hex(text(rows, r, 5));
    out.push_back(std::move(answered));
  }
  return out;
}

std::vector<HistoryEntry> PostgresqlStore::history(const HistoryQuery& query) {
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT id, time, user_name, event, service, rhost, tty, ruser, admin_uid, detail, "
      "peer_uid, events, first_time, host FROM history WHERE ($4::text IS NULL OR user_name = $4) "
      "AND ($5::text IS NULL OR host = $5) AND time >= $1 AND "
      "(NOT $2::boolean OR event IN " +
          failure_events_sql() + ") ORDER BY time DESC, id DESC LIMIT $3",
      {number(query.since ? to_unix(*query.since) : std::numeric_limits<std::int64_t>::min()),
       query.failures_only ? "t" : "f", number(sql_limit(query.limit)), query.user, query.host},
      "reading history");
  std::vector<HistoryEntry> entries;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    HistoryEntry& entry = entries.emplace_back();
    entry.id = int64(rows, r, 0);
    entry.time = from_unix(int64(rows, r, 1));
    entry.user = text(rows, r, 2);
    const std::string event = text(rows, r, 3);
    const auto parsed = history_event_from_string(event);
    if (!parsed) {
      throw StoreError("postgresql " + server_ + ": history row " + std::to_string(entry.id) +
                       " has an unknown event \"" + event + "\"");
    }
    entry.event = *parsed;
    entry.service = text(rows, r, 4);
    entry.rhost = text(rows, r, 5);
    entry.tty = text(rows, r, 6);
    entry.ruser = text(rows, r, 7);
    if (!is_null(rows, r, 8)) entry.admin_uid = uint32(rows, r, 8, server_);
    entry.detail = text(rows, r, 9);
    if (!is_null(rows, r, 10)) entry.peer_uid = uint32(rows, r, 10, server_);
    const std::int64_t events = int64(rows, r, 11);
    if (events < 1) {
      throw StoreError("postgresql " + server_ + ": history row " + std::to_string(entry.id) +
                       " stands for " + std::to_string(events) + " events");
    }
    entry.count = static_cast<std::uint64_t>(events);
    if (!is_null(rows, r, 12)) entry.first_time = from_unix(int64(rows, r, 12));
    entry.host = text(rows, r, 13);
  }
  return entries;
}

std::uint64_t PostgresqlStore::count_events(HistoryEvent event, TimePoint since,
                                            const std::optional<std::string>& host) {
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT coalesce(sum(events), 0) FROM history WHERE event = $1 AND time >= $2 AND "
      "($3::text IS NULL OR host = $3)",
      {std::string(to_string(event)), number(since), host}, "counting events");
  return static_cast<std::uint64_t>(int64(rows, 0, 0));
}

std::vector<std::pair<std::string, std::uint64_t>> PostgresqlStore::top_failures(
    TimePoint since, bool by_rhost, std::size_t limit, const std::optional<std::string>& host) {
  std::lock_guard lock(read_mutex_);
  // COLLATE "C": ties break in byte order, as in SQLite, whatever the
  // database's locale.
  const std::string column = by_rhost ? "rhost" : "user_name";
  Result rows = reader().exec("SELECT " + column +
                                  ", sum(events) AS n FROM history WHERE time >= $1 AND event IN " +
                                  failure_events_sql() + (by_rhost ? " AND rhost <> ''" : "") +
                                  " AND ($3::text IS NULL OR host = $3) GROUP BY " + column +
                                  " ORDER BY n DESC, " + column + " COLLATE \"C\" LIMIT $2",
                              {number(since), number(sql_limit(limit)), host}, "ranking failures");
  std::vector<std::pair<std::string, std::uint64_t>> top;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    top.emplace_back(text(rows, r, 0), static_cast<std::uint64_t>(int64(rows, r, 1)));
  }
  return top;
}

void PostgresqlStore::for_each_failure_origin(
    TimePoint since,
    const std::function<void(std::string_view, std::string_view, std::uint64_t)>& visit,
    const std::optional<std::string>& host) {
  std::lock_guard lock(read_mutex_);
  Connection& db = reader();
  constexpr std::string_view doing = "reading the origins of failures";
  // A cursor, so that a flood's distinct origins never sit in one result.
  // Unlike the reader's other statements it runs in a transaction: a
  // connection broken half-way fails the scan (the cursor is gone), and the
  // command reports it.
  db.exec("BEGIN READ ONLY", {}, doing);
  try {
    db.exec(
        "DECLARE failure_origins NO SCROLL CURSOR FOR SELECT rhost, CASE WHEN rhost = '' "
        "THEN ruser ELSE '' END AS local_user, sum(events) FROM history WHERE time >= $1 "
        "AND ($2::text IS NULL OR host = $2) AND event IN " +
            failure_events_sql() + " AND NOT (rhost = '" + kAnyOrigin + "' AND service = '" +
            kAnyOrigin + "') GROUP BY rhost, local_user",
        {number(since), host}, doing);
    for (;;) {
      Result rows = db.exec("FETCH 10000 FROM failure_origins", {}, doing);
      const int count = PQntuples(rows.get());
      for (int r = 0; r < count; ++r) {
        visit(text(rows, r, 0), text(rows, r, 1), static_cast<std::uint64_t>(int64(rows, r, 2)));
      }
      if (count == 0) break;
    }
    db.exec("COMMIT", {}, doing);
  } catch (...) {
    db.roll_back();
    throw;
  }
}

std::vector<std::uint64_t> PostgresqlStore::failures_per_hour(
    TimePoint from, std::size_t hours, const std::optional<std::string>& host) {
  std::lock_guard lock(read_mutex_);
  Result rows = reader().exec(
      "SELECT (time - $1) / 3600 AS hour, sum(events) FROM history WHERE time >= $1 AND time < $2 "
      "AND ($3::text IS NULL OR host = $3) AND event IN " +
          failure_events_sql() + " GROUP BY hour",
      {number(from), number(from + std::chrono::hours(static_cast<std::int64_t>(hours))), host},
      "counting failures per hour");
  std::vector<std::uint64_t> counts(hours, 0);
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    const std::int64_t hour = int64(rows, r, 0);
    if (hour >= 0 && static_cast<std::size_t>(hour) < hours) {
      counts[static_cast<std::size_t>(hour)] = static_cast<std::uint64_t>(int64(rows, r, 1));
    }
  }
  return counts;
}

std::uint64_t PostgresqlStore::prune_history(TimePoint before) {
  std::lock_guard lock(write_mutex_);
  Result result =
      writer().exec("DELETE FROM history WHERE host = $2 AND time < $1",
                    {number(before), host_name_}, "pruning history");
  return std::stoull(PQcmdTuples(result.get()));
}

std::uint64_t PostgresqlStore::prune_history_slice(TimePoint before, std::size_t limit) {
  std::lock_guard lock(write_mutex_);
  Result result = writer().exec(
      "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE host = $3 AND time < $1 "
      "ORDER BY time LIMIT $2)",
      {number(before), number(sql_limit(limit)), host_name_}, "pruning history");
  return std::stoull(PQcmdTuples(result.get()));
}

namespace {

// One row of history_usage() or of a counted prune, columns from `first`:
// peer_uid, whether the row is an aggregate, user, event, service, rhost.
void count_usage_row(const Result& rows, int r, int first, const std::string& server,
                     HistoryUsage& usage) {
  ++usage.rows;
  std::optional<std::uint32_t> peer_uid;
  if (!is_null(rows, r, first)) peer_uid = uint32(rows, r, first, server);
  if (peer_uid && *peer_uid != 0) ++usage.rows_by_peer_uid[*peer_uid];
  if (text(rows, r, first + 1) != "t") return;
  const std::string event = text(rows, r, first + 3);
  const auto parsed = history_event_from_string(event);
  if (!parsed) {
    throw StoreError("postgresql " + server + ": an aggregate history row has an unknown event \"" +
                     event + "\"");
  }
  usage.aggregates.push_back(HistoryAggregateKey{peer_uid, text(rows, r, first + 2), *parsed,
                                                 text(rows, r, first + 4),
                                                 text(rows, r, first + 5)});
}

}  // namespace

HistoryUsage PostgresqlStore::prune_history_slice_counted(TimePoint before, std::size_t limit) {
  std::lock_guard lock(write_mutex_);
  // Started apart: the history is on the server; the next prune, an hour
  // on, finds it.
  if (!contacted_) return {};
  // Each host prunes its own rows, by its own history_retention, as its
  // own caps count them.
  Result rows = writer().exec(
      "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE host = $3 AND time < $1 "
      "ORDER BY time LIMIT $2) RETURNING host = $3, peer_uid, first_time IS NOT NULL, user_name, "
      "event, service, rhost",
      {number(before), number(sql_limit(limit)), host_name_}, "pruning history");
  HistoryUsage removed;
  for (int r = 0; r < PQntuples(rows.get()); ++r) {
    if (text(rows, r, 0) == "t") count_usage_row(rows, r, 1, server_, removed);
  }
  return removed;
}

HistoryUsage PostgresqlStore::history_usage() {
  // Started apart: this host's rows are on the server; the caps count from
  // nothing until the catch-up reloads the counts.
  if (!contacted_) return {};
  std::lock_guard lock(read_mutex_);
  HistoryUsage usage;
  Result total = reader().exec("SELECT count(*) FROM history WHERE host = $1", {host_name_},
                               "counting history rows");
  usage.rows = static_cast<std::uint64_t>(int64(total, 0, 0));
  Result by_uid = reader().exec(
      "SELECT peer_uid, count(*) FROM history WHERE host = $1 AND peer_uid IS NOT NULL AND "
      "peer_uid <> 0 GROUP BY peer_uid",
      {host_name_}, "counting history rows by peer");
  for (int r = 0; r < PQntuples(by_uid.get()); ++r) {
    usage.rows_by_peer_uid[uint32(by_uid, r, 0, server_)] =
        static_cast<std::uint64_t>(int64(by_uid, r, 1));
  }
  Result keys = reader().exec(
      "SELECT peer_uid, true, user_name, event, service, rhost FROM history WHERE host = $1 AND "
      "first_time IS NOT NULL",
      {host_name_}, "reading aggregate history rows");
  for (int r = 0; r < PQntuples(keys.get()); ++r) {
    HistoryUsage one;
    count_usage_row(keys, r, 0, server_, one);
    usage.aggregates.insert(usage.aggregates.end(), one.aggregates.begin(), one.aggregates.end());
  }
  return usage;
}

void PostgresqlStore::watch_shared_state(SharedStateWatch watch) {
  auto shared_watch = std::make_shared<SharedStateWatch>(std::move(watch));
  NotificationListener::Handlers handlers;
  handlers.notified = [this, shared_watch](std::vector<std::string> payloads) {
    // Before the first contact of a host that started apart there is no
    // reading connection; the catch-up reads all state once it is made.
    if (!contacted_) return;
    try {
      const std::uint64_t stamp = shared_watch->read_stamp ? shared_watch->read_stamp() : 0;
      auto changes = read_changed_rows(payloads);
      if (changes.empty()) return;
      // The rows go into the local copy after they went to memory, so that
      // the copy never holds up what the other hosts did.
      std::vector<SharedStateChange> copy;
      if (outbox_) copy = changes;
      if (shared_watch->changed) shared_watch->changed(std::move(changes), stamp);
      if (outbox_) {
        try {
          outbox_->keep_rows(copy);
        } catch (const std::exception& e) {
          // Memory has the rows; a start apart would miss them.
          if (shared_watch->trouble) {
            shared_watch->trouble(std::string("cannot keep the local copy of the fleet's rows: ") +
                                  e.what());
          }
        }
      }
    } catch (const std::exception& e) {
      // The rows could not be read back: what this host holds may be
      // behind the fleet, so it reads everything again.
      if (shared_watch->trouble) {
        shared_watch->trouble(std::string("cannot read the rows other hosts changed: ") +
                              e.what() + "; reloading all state");
      }
      if (shared_watch->reload) shared_watch->reload();
    }
  };
  handlers.resumed = [this, shared_watch] {
    // The same: the catch-up after the first contact reads all state.
    if (!contacted_) return;
    if (shared_watch->reload) shared_watch->reload();
  };
  handlers.trouble = [shared_watch](const std::string& problem) {
    if (shared_watch->trouble) shared_watch->trouble(problem);
  };
  // With degraded mode, a server away at the start is waited for: the
  // listener connects when it can, and the owner reloads then (`resumed`).
  listener_ = std::make_unique<NotificationListener>(
      settings_.conninfo, settings_.connect_timeout, std::string(kStateChannel), server_,
      std::move(handlers), !settings_.outbox_path.empty());
}

std::vector<SharedStateChange> PostgresqlStore::read_changed_rows(
    const std::vector<std::string>& payloads) {
  struct TableInfo {
    char tag;
    SharedTable table;
    const char* name;
    const char* key_column;
    const char* owner;
  };
  static constexpr TableInfo kTables[] = {
      {kUsersTag, SharedTable::users, "user_state", "user_name", "user"},
      {kSourcesTag, SharedTable::sources, "source_state", "source", "source"},
      {kUnfamiliarTag, SharedTable::unfamiliar, "unfamiliar_state", "user_name",
       "unfamiliar-source state of user"},
  };
  // Each key once per table, whatever number of notifications named it: the
  // row is read as it is now, after all of them.
  std::map<char, std::set<std::string, std::less<>>> keys;
  for (const std::string& payload : payloads) {
    const auto first = payload.find('	');
    if (first == std::string::npos || first + 2 >= payload.size() || payload[first + 2] != '	') {
      continue;  // not ours: another program on the channel
    }
    keys[payload[first + 1]].insert(payload.substr(first + 3));
  }
  std::vector<SharedStateChange> changes;
  std::lock_guard lock(read_mutex_);
  for (const TableInfo& info : kTables) {
    const auto wanted = keys.find(info.tag);
    if (wanted == keys.end()) continue;
    ArrayLiteral array;
    for (const auto& key : wanted->second) array.add(key);
    Result rows = reader().exec(std::string("SELECT ") + info.key_column + ", " + kStateColumns +
                                    " FROM " + info.name + " WHERE " + info.key_column +
                                    " = ANY($1::text[])",
                                {array.finish()}, "reading the rows other hosts changed");
    std::map<std::string, UserState, std::less<>> found;
    for (int r = 0; r < PQntuples(rows.get()); ++r) {
      std::string key = text(rows, r, 0);
      UserState state = state_from_row(rows, r, std::string(info.owner) + " " + key, server_);
      found.emplace(std::move(key), std::move(state));
    }
    for (const auto& key : wanted->second) {
      SharedStateChange change;
      change.table = info.table;
      change.key = key;
      if (const auto row = found.find(key); row != found.end()) change.state = row->second;
      changes.push_back(std::move(change));
    }
  }
  if (const auto wanted = keys.find(kFamiliarTag); wanted != keys.end()) {
    ArrayLiteral array;
    for (const auto& key : wanted->second) array.add(key);
    Result rows = reader().exec(
        "SELECT user_name, source, last_success FROM familiar_source WHERE user_name = "
        "ANY($1::text[]) ORDER BY user_name COLLATE \"C\", last_success DESC, source COLLATE "
        "\"C\"",
        {array.finish()}, "reading the familiar sources other hosts changed");
    std::map<std::string, std::vector<FamiliarSource>, std::less<>> lists;
    for (int r = 0; r < PQntuples(rows.get()); ++r) {
      lists[text(rows, r, 0)].push_back(
          FamiliarSource{text(rows, r, 1), from_unix(int64(rows, r, 2))});
    }
    for (const auto& key : wanted->second) {
      SharedStateChange change;
      change.table = SharedTable::familiar;
      change.key = key;
      if (const auto list = lists.find(key); list != lists.end()) change.familiar = list->second;
      changes.push_back(std::move(change));
    }
  }
  return changes;
}

void PostgresqlStore::register_host() {
  std::lock_guard lock(write_mutex_);
  writer().exec(
      "INSERT INTO fleet_host (host) VALUES ($1) ON CONFLICT (host) DO UPDATE SET "
      "last_start = now()",
      {host_name_}, "registering this host");
}

std::string read_conninfo_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    throw StoreError(path +
                     ": cannot open the PostgreSQL connection file: " + std::strerror(errno));
  }
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw StoreError(path + ": " + std::strerror(error));
  }
  const auto refuse = [&](const std::string& why) {
    ::close(fd);
    throw StoreError(path + ": refused as the PostgreSQL connection file: " + why);
  };
  if (!S_ISREG(info.st_mode)) refuse("not a regular file");
  if (info.st_uid != geteuid() && info.st_uid != 0) {
    refuse("owned by uid " + std::to_string(info.st_uid) + ", not by the daemon's user or root");
  }
  if ((info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    refuse(std::string("mode ") + mode +
           " lets others read or change it; it holds credentials (chmod 600)");
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      throw StoreError(path + ": " + std::strerror(error));
    }
    if (got == 0) break;
    content.append(buffer, static_cast<std::size_t>(got));
    if (content.size() > 64 * 1024) refuse("larger than 64 KiB");
  }
  ::close(fd);
  // One connection string; blank lines and '#' comments around it are allowed.
  std::string conninfo;
  std::size_t start = 0;
  while (start <= content.size()) {
    std::size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(start, end - start);
    const auto first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos && line[first] != '#') {
      if (!conninfo.empty()) {
        throw StoreError(path + ": more than one line holds a connection string");
      }
      conninfo = trimmed(line.substr(first));
      while (!conninfo.empty() && (conninfo.back() == '\r' || conninfo.back() == '\t')) {
        conninfo.pop_back();
      }
    }
    start = end + 1;
  }
  if (conninfo.empty()) throw StoreError(path + ": holds no connection string");
  return conninfo;
}

void check_conninfo(const std::string& conninfo, bool inline_in_config) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    // libpq's message names the bad part of the syntax, never a value.
    std::string message = error != nullptr ? trimmed(error) : "out of memory";
    PQfreemem(error);
    throw StoreError("postgresql: the connection string does not parse: " + message);
  }
  bool has_password = false;
  for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) == "password" && option->val != nullptr &&
        *option->val != '\0') {
      has_password = true;
    }
  }
  PQconninfoFree(options);
  if (has_password && inline_in_config) {
    throw StoreError(
        "postgresql: the connection string in acctlock.conf carries a password, and that file "
        "is readable by every process that loads the PAM module; put the string in a file "
        "of its own, mode 0600 (postgresql = /etc/security/acctlock-postgresql.conf), or use "
        "a password file (passfile=) or client certificates");
  }
}

}  // namespace acctlock
