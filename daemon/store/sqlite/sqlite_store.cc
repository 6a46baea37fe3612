// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <string_view>
#include <system_error>

#include "daemon/store/history_budget.h"
#include "daemon/store/sqlite/wal_inspection.h"

namespace acctlock {
namespace {

// Each entry takes the schema from version N to N + 1, in one transaction.
// Never edit a released entry: add a new one, and bump kSchemaVersion.
constexpr const char* kMigrations[] = {
    // 1: the first schema. Times are unix seconds. A user_state row exists only
    // while the policy has something to remember about the user.
    R"sql(
CREATE TABLE user_state (
  user TEXT NOT NULL PRIMARY KEY CHECK (user <> ''),
  failures INTEGER NOT NULL CHECK (failures >= 0),
  last_failure INTEGER NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 0),
  last_lock_end INTEGER NOT NULL,
  locked INTEGER NOT NULL CHECK (locked IN (0, 1)),  -- a failure lock is in force
  lock_since INTEGER CHECK (locked = 0 OR lock_since IS NOT NULL),
  lock_until INTEGER,                                -- NULL: until an admin unlocks
  manual INTEGER NOT NULL CHECK (manual IN (0, 1)),  -- an admin's lock is in force
  manual_reason TEXT CHECK (manual = 0 OR manual_reason IS NOT NULL),
  manual_since INTEGER CHECK (manual = 0 OR manual_since IS NOT NULL),
  manual_admin_uid INTEGER CHECK (manual = 0 OR manual_admin_uid IS NOT NULL)
) WITHOUT ROWID;

CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  user TEXT NOT NULL,
  event TEXT NOT NULL,
  service TEXT NOT NULL,
  rhost TEXT NOT NULL,
  tty TEXT NOT NULL,
  ruser TEXT NOT NULL,
  admin_uid INTEGER,  -- NULL unless an admin did it
  detail TEXT NOT NULL
);
CREATE INDEX history_by_user_time ON history (user, time);
CREATE INDEX history_by_time ON history (time);
)sql",
    // 2: answered event ids (protocol v2), so that a client's resend gets
    // the first answer even after a restart. `seq` orders rows by arrival
    // for the count bound; the id is the client's.
    R"sql(
CREATE TABLE answered_event (
  seq INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL,
  peer_uid INTEGER NOT NULL,
  user TEXT NOT NULL,
  type INTEGER NOT NULL,
  time INTEGER NOT NULL,
  answer BLOB NOT NULL
);
CREATE INDEX answered_event_by_time ON answered_event (time);
)sql",
    // 3: a manual lock may end by itself (acctlock lock --for).
    R"sql(
ALTER TABLE user_state ADD COLUMN manual_until INTEGER;  -- NULL: until an admin unlocks
)sql",
    // 4: fail_window = sliding keeps the times of the counted failures before
    // last_failure (unix seconds, space-separated, oldest first). Rows from
    // before have none: the policy counts their failures as recent as
    // last_failure.
    R"sql(
ALTER TABLE user_state ADD COLUMN earlier_failures TEXT NOT NULL DEFAULT '';
)sql",
    // 5: per-source state (issue 11): the columns of user_state, keyed by the
    // normalised source ("192.0.2.1", "2001:db8::/64", "local:alice").
    R"sql(
CREATE TABLE source_state (
  source TEXT NOT NULL PRIMARY KEY CHECK (source <> ''),
  failures INTEGER NOT NULL CHECK (failures >= 0),
  last_failure INTEGER NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 0),
  last_lock_end INTEGER NOT NULL,
  locked INTEGER NOT NULL CHECK (locked IN (0, 1)),
  lock_since INTEGER CHECK (locked = 0 OR lock_since IS NOT NULL),
  lock_until INTEGER,
  manual INTEGER NOT NULL CHECK (manual IN (0, 1)),
  manual_reason TEXT CHECK (manual = 0 OR manual_reason IS NOT NULL),
  manual_since INTEGER CHECK (manual = 0 OR manual_since IS NOT NULL),
  manual_admin_uid INTEGER CHECK (manual = 0 OR manual_admin_uid IS NOT NULL),
  manual_until INTEGER,
  earlier_failures TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
)sql",
    // 6: bounded history (issue 9). peer_uid: who reported the event (NULL:
    // the daemon itself, an admin, or a row from before). An aggregate row
    // stands for `events` events of one key from first_time to time; a plain
    // row has events = 1 and no first_time. The partial indexes keep the
    // start-up counts and the aggregate lookup off a full scan.
    R"sql(
ALTER TABLE history ADD COLUMN peer_uid INTEGER;
ALTER TABLE history ADD COLUMN events INTEGER NOT NULL DEFAULT 1 CHECK (events >= 1);
ALTER TABLE history ADD COLUMN first_time INTEGER;
CREATE INDEX history_by_peer_uid ON history (peer_uid)
  WHERE peer_uid IS NOT NULL AND peer_uid <> 0;
CREATE INDEX history_aggregates ON history (user, event, service, rhost)
  WHERE first_time IS NOT NULL;
)sql",
    // 7: familiar sources (issue 11, lockout_scope = unfamiliar): per user,
    // the sources of successful logins, and the user's failure state for
    // unfamiliar sources (the columns of user_state; user_state keeps the
    // familiar sources' state and the manual lock). Rows of both are written
    // only by a daemon that has them; a database from before has none.
    R"sql(
CREATE TABLE familiar_source (
  user TEXT NOT NULL CHECK (user <> ''),
  source TEXT NOT NULL CHECK (source <> ''),
  last_success INTEGER NOT NULL,
  PRIMARY KEY (user, source)
) WITHOUT ROWID;

CREATE TABLE unfamiliar_state (
  user TEXT NOT NULL PRIMARY KEY CHECK (user <> ''),
  failures INTEGER NOT NULL CHECK (failures >= 0),
  last_failure INTEGER NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 0),
  last_lock_end INTEGER NOT NULL,
  locked INTEGER NOT NULL CHECK (locked IN (0, 1)),
  lock_since INTEGER CHECK (locked = 0 OR lock_since IS NOT NULL),
  lock_until INTEGER,
  manual INTEGER NOT NULL CHECK (manual IN (0, 1)),
  manual_reason TEXT CHECK (manual = 0 OR manual_reason IS NOT NULL),
  manual_since INTEGER CHECK (manual = 0 OR manual_since IS NOT NULL),
  manual_admin_uid INTEGER CHECK (manual = 0 OR manual_admin_uid IS NOT NULL),
  manual_until INTEGER,
  earlier_failures TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
)sql",
    // 8: `stats` (issue 10) counts and ranks the failures of the last day.
    // Through history_by_time that cost a table row read per failure, in
    // no particular order (13.5 s at 10M rows, 274k of them in the day);
    // this index holds every column those queries read, in time order, for
    // the failure rows only. The events are the names failure_events_sql()
    // writes, spelt the same so that the planner matches the queries' terms.
    R"sql(
CREATE INDEX history_failures_by_time
  ON history (time, event, user, rhost, ruser, service, events)
  WHERE event IN ('failure', 'locked');
)sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

// Long enough to ride out an admin poking at the file with the sqlite3 shell,
// short enough that a stuck lock surfaces as an error rather than a hang.
constexpr int kBusyTimeoutMs = 5000;

std::int64_t to_unix(TimePoint time) {
  return time.time_since_epoch().count();
}
TimePoint from_unix(std::int64_t seconds) {
  return TimePoint{Seconds{seconds}};
}

// What went wrong, in words an operator can act on. Built from the connection
// right after the failing call, before anything else (a ROLLBACK) replaces it.
std::string describe_error(sqlite3* db, int code) {
  const int primary = code & 0xff;
  std::string text;
  if (primary == SQLITE_FULL) text = "disk full: ";
  text += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  if (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR || primary == SQLITE_READONLY ||
      primary == SQLITE_PERM) {
    if (const int err = db != nullptr ? sqlite3_system_errno(db) : 0; err != 0) {
      text += " (";
      text += std::strerror(err);
      text += ")";
    }
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    text +=
        "; acctlockd leaves the file as it is: restore it from a backup, or move it aside "
        "to start with an empty database";
  }
  return text;
}

class Connection {
 public:
  Connection(const std::string& path, int flags) : path_(path) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      // The handle exists even when opening failed, to carry the message.
      const std::string message = describe_error(db_, rc);
      sqlite3_close_v2(db_);
      throw StoreError(path + ": " + message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // The file is trusted only as data: no writes to the schema table, no
    // schema-defined functions running with our privileges.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  }
  ~Connection() { sqlite3_close_v2(db_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(std::string_view doing, int code) const {
    throw StoreError(path_ + ": " + std::string(doing) + ": " + describe_error(db_, code));
  }

  void exec(const char* sql, std::string_view doing) const {
    if (const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) {
      fail(doing, rc);
    }
  }

  // Rolls back whatever transaction is open. Used on error paths only, so it
  // does not throw: the error being reported matters more.
  void roll_back() const noexcept {
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// A statement prepared once and reused; Use resets it after each run so that
// it holds no read transaction open between calls.
class Statement {
 public:
  Statement(const Connection& db, const std::string& sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db.get(), sql.c_str(), static_cast<int>(sql.size() + 1),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail("preparing a statement", rc);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  class Use {
   public:
    explicit Use(Statement& statement) : statement_(statement) {}
    ~Use() { sqlite3_reset(statement_.stmt_); }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    Statement& statement_;
  };

  void bind(int index, std::int64_t value) { check_bind(sqlite3_bind_int64(stmt_, index, value)); }
  void bind(int index, TimePoint time) { bind(index, to_unix(time)); }
  void bind(int index, bool value) { bind(index, std::int64_t{value ? 1 : 0}); }
  void bind_null(int index) { check_bind(sqlite3_bind_null(stmt_, index)); }

  // The text must stay alive until the statement is reset: no copy is made.
  void bind(int index, std::string_view text) {
    if (text.size() > static_cast<std::size_t>(INT_MAX)) db_.fail("binding text", SQLITE_TOOBIG);
    // A null pointer would bind SQL NULL; an empty view may carry one.
    const char* data = text.data() != nullptr ? text.data() : "";
    check_bind(sqlite3_bind_text(stmt_, index, data, static_cast<int>(text.size()), SQLITE_STATIC));
  }

  void bind_blob(int index, std::string_view bytes) {
    if (bytes.size() > static_cast<std::size_t>(INT_MAX)) db_.fail("binding a blob", SQLITE_TOOBIG);
    const char* data = bytes.data() != nullptr ? bytes.data() : "";
    check_bind(
        sqlite3_bind_blob(stmt_, index, data, static_cast<int>(bytes.size()), SQLITE_STATIC));
  }

  template <typename T>
  void bind(int index, const std::optional<T>& value) {
    if (value) {
      bind(index, *value);
    } else {
      bind_null(index);
    }
  }
  void bind(int index, std::uint32_t value) { bind(index, std::int64_t{value}); }

  // True while there is a row to read; throws on error.
  bool step(std::string_view doing) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(doing, rc);
  }

  void run(std::string_view doing) {
    Use use(*this);
    while (step(doing)) {
    }
  }

  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  TimePoint time(int column) const { return from_unix(int64(column)); }
  bool boolean(int column) const { return int64(column) != 0; }

  std::uint32_t uint32(int column) const {
    const std::int64_t value = int64(column);
    if (value < 0 || value > std::numeric_limits<std::uint32_t>::max()) {
      throw StoreError(db_.path() + ": value " + std::to_string(value) + " in column " +
                       sqlite3_column_name(stmt_, column) + " is out of range");
    }
    return static_cast<std::uint32_t>(value);
  }

  std::string blob(int column) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    if (data == nullptr) return {};
    return std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }

  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (data == nullptr) return {};
    return std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  void check_bind(int rc) const {
    if (rc != SQLITE_OK) db_.fail("binding a value", rc);
  }

  const Connection& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::int64_t sql_limit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(
      limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

std::int64_t query_int(const Connection& db, const std::string& sql, std::string_view doing) {
  Statement statement(db, sql);
  Statement::Use use(statement);
  if (!statement.step(doing)) db.fail(doing, SQLITE_ERROR);
  return statement.int64(0);
}

// The events that count as failures in history(failures_only) and
// top_failures, as an SQL list built from the names the store writes.
std::string failure_events_sql() {
  return std::string("('") + to_string(HistoryEvent::failure) + "', '" +
         to_string(HistoryEvent::locked) + "')";
}

void check_directory(const std::string& path) {
  if (path.empty()) throw StoreError("the database path is empty");
  if (path == ":memory:") {
    throw StoreError(path + ": an in-memory database would lose every lock at exit");
  }
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  if (directory.empty()) directory = ".";
  std::error_code error;
  const auto status = std::filesystem::status(directory, error);
  if (status.type() == std::filesystem::file_type::not_found) {
    throw StoreError(path + ": directory " + directory.string() + " does not exist");
  }
  if (error)
    throw StoreError(path + ": cannot reach " + directory.string() + ": " + error.message());
  if (status.type() != std::filesystem::file_type::directory) {
    throw StoreError(path + ": " + directory.string() + " is not a directory");
  }
}

// A full check reads every page; quick_check skips the index-to-table
// cross-checks and is fast enough to run at every start.
void check_integrity(const Connection& db) {
  Statement check(db, "PRAGMA quick_check(5)");
  Statement::Use use(check);
  std::string problems;
  while (check.step("checking the database")) {
    std::string line = check.text(0);
    if (line == "ok") return;
    if (!problems.empty()) problems += "; ";
    problems += line;
  }
  throw StoreError(db.path() + ": " + describe_error(nullptr, SQLITE_CORRUPT) +
                   " (quick_check: " + problems + ")");
}

// The last connection to close a WAL database checkpoints the log into the
// file and deletes it; a crash, a kill -9 or a power loss leaves it behind.
// So a missing -wal file means the previous run stopped cleanly, and the
// whole-file check (seconds at ten million history rows, all of it before
// "ready") is kept for the starts that follow an unclean stop.
void set_checkpoint_on_close(const Connection& db, bool enabled) {
  int applied = -1;
  if (sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, enabled ? 0 : 1, &applied) !=
          SQLITE_OK ||
      applied != (enabled ? 0 : 1)) {
    throw StoreError(std::string("cannot ") + (enabled ? "enable" : "disable") +
                     " the checkpoint on close: " + sqlite3_errmsg(db.get()));
  }
}

bool stopped_cleanly(const std::string& path) {
  std::error_code error;
  return !std::filesystem::exists(path + "-wal", error) && !error;
}

// After a clean stop: the first page of every table, which is where a file
// overwritten or truncated by something else shows first, for the cost of a
// few page reads whatever the size.
void check_tables(const Connection& db) {
  std::vector<std::string> tables;
  {
    Statement list(db, "SELECT name FROM sqlite_schema WHERE type = 'table'");
    Statement::Use use(list);
    while (list.step("checking the database")) tables.push_back(list.text(0));
  }
  for (const std::string& table : tables) {
    std::string quoted = "\"";
    for (const char c : table) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += '"';
    Statement first(db, "SELECT 1 FROM " + quoted + " LIMIT 1");
    Statement::Use use(first);
    first.step("checking the database");
  }
}

int stored_version(const Connection& db) {
  return static_cast<int>(query_int(db, "PRAGMA user_version", "reading the schema version"));
}

void refuse_newer(const Connection& db, int version) {
  if (version > SqliteStore::kSchemaVersion) {
    throw StoreError(db.path() + ": created by a newer acctlock (schema version " +
                     std::to_string(version) + ", this one knows up to " +
                     std::to_string(SqliteStore::kSchemaVersion) + ")");
  }
}

// Schema version 0 is a new, empty file; with tables in it, some other
// application's database.
void refuse_foreign(const Connection& db, int version) {
  if (version == 0 &&
      query_int(db, "SELECT count(*) FROM sqlite_schema", "reading the schema") != 0) {
    throw StoreError(db.path() +
                     ": an SQLite database, but not an acctlock one (it has tables and no "
                     "schema version)");
  }
  if (version < 0) {
    throw StoreError(db.path() + ": invalid schema version " + std::to_string(version));
  }
}

// Everything that decides whether the file is acctlock's and whole, on a
// connection that cannot write: a file refused here is left byte for byte
// as it was, its -wal included (a read-only connection neither rolls back a
// hot journal nor checkpoints).
void check_before_writing(const std::string& path) {
  // acctlock's databases are in WAL mode from their first write; a rollback
  // journal is another program's interrupted transaction, which the first
  // read-write connection would roll back into the file.
  std::error_code error;
  if (std::filesystem::exists(path + "-journal", error)) {
    throw StoreError(path + ": has a rollback journal (" + path +
                     "-journal) from another program's interrupted transaction; acctlockd "
                     "leaves both as they are (acctlock's own databases use a -wal file)");
  }
  Connection db(path, SQLITE_OPEN_READONLY);
  if (stopped_cleanly(path)) {
    check_tables(db);
  } else {
    check_integrity(db);
  }
  const int version = stored_version(db);
  refuse_newer(db, version);
  refuse_foreign(db, version);
}

// Settings that live with the connection rather than in the file.
void configure(const Connection& db) {
  // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power
  // loss, and the daemon answers a client as soon as commit() returns.
  db.exec("PRAGMA synchronous = FULL", "setting synchronous=FULL");
  db.exec("PRAGMA foreign_keys = ON", "enabling foreign keys");
}

void migrate(const Connection& db) {
  for (;;) {
    // The version is read inside the write transaction, so that two processes
    // opening one file cannot both apply the same migration.
    db.exec("BEGIN IMMEDIATE", "starting a schema migration");
    try {
      const int version = stored_version(db);
      refuse_newer(db, version);
      if (version == SqliteStore::kSchemaVersion) {
        db.exec("COMMIT", "finishing the schema check");
        return;
      }
      refuse_foreign(db, version);
      const std::string doing = "migrating the schema to version " + std::to_string(version + 1);
      db.exec(kMigrations[version], doing);
      db.exec(("PRAGMA user_version = " + std::to_string(version + 1)).c_str(), doing);
      db.exec("COMMIT", doing);
    } catch (...) {
      db.roll_back();
      throw;
    }
  }
}

// A user_state or source_state row, columns 1 to 12 (0 is the key).
// Reads a user_state or source_state row; `owner` ("user alice", "source
// 192.0.2.1") names it in an error.
UserState read_state(Statement& select, const std::string& owner) {
  UserState state;
  state.failures = select.uint32(1);
  state.last_failure = select.time(2);
  state.level = select.uint32(3);
  state.last_lock_end = select.time(4);
  if (select.boolean(5)) {
    FailureLock& failure_lock = state.failure_lock.emplace();
    failure_lock.since = select.time(6);
    if (!select.is_null(7)) failure_lock.until = select.time(7);
  }
  if (select.boolean(8)) {
    ManualLock& manual_lock = state.manual_lock.emplace();
    manual_lock.reason = select.text(9);
    manual_lock.since = select.time(10);
    manual_lock.admin_uid = select.uint32(11);
    if (!select.is_null(12)) manual_lock.until = select.time(12);
  }
  state.earlier_failures = decode_failure_times(select.text(13), owner);
  return state;
}

// Binds a user_state or source_state row to `put`'s 14 parameters.
// `earlier_failures` is state.earlier_failures encoded; it is bound without a
// copy, so it must outlive the statement's use.
void bind_state(Statement& put, std::string_view key, const UserState& state,
                std::string_view earlier_failures) {
  put.bind(1, key);
  put.bind(2, state.failures);
  put.bind(3, state.last_failure);
  put.bind(4, state.level);
  put.bind(5, state.last_lock_end);
  put.bind(6, state.failure_lock.has_value());
  if (state.failure_lock) {
    put.bind(7, state.failure_lock->since);
    put.bind(8, state.failure_lock->until);
  } else {
    put.bind_null(7);
    put.bind_null(8);
  }
  put.bind(9, state.manual_lock.has_value());
  if (state.manual_lock) {
    put.bind(10, std::string_view(state.manual_lock->reason));
    put.bind(11, state.manual_lock->since);
    put.bind(12, state.manual_lock->admin_uid);
    put.bind(13, state.manual_lock->until);
  } else {
    put.bind_null(10);
    put.bind_null(11);
    put.bind_null(12);
    put.bind_null(13);
  }
  put.bind(14, earlier_failures);
}

}  // namespace

struct SqliteStore::WriteSide {
  explicit WriteSide(const std::string& path)
      : db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {}

  void prepare() {
    begin.emplace(db, "BEGIN IMMEDIATE");
    commit.emplace(db, "COMMIT");
    put_state.emplace(
        db,
        "INSERT OR REPLACE INTO user_state (user, failures, last_failure, level, "
        "last_lock_end, locked, lock_since, lock_until, manual, manual_reason, "
        "manual_since, manual_admin_uid, manual_until, earlier_failures) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    delete_state.emplace(db, "DELETE FROM user_state WHERE user = ?1");
    put_source.emplace(
        db,
        "INSERT OR REPLACE INTO source_state (source, failures, last_failure, level, "
        "last_lock_end, locked, lock_since, lock_until, manual, manual_reason, "
        "manual_since, manual_admin_uid, manual_until, earlier_failures) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    delete_source.emplace(db, "DELETE FROM source_state WHERE source = ?1");
    put_unfamiliar.emplace(
        db,
        "INSERT OR REPLACE INTO unfamiliar_state (user, failures, last_failure, level, "
        "last_lock_end, locked, lock_since, lock_until, manual, manual_reason, "
        "manual_since, manual_admin_uid, manual_until, earlier_failures) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    delete_unfamiliar.emplace(db, "DELETE FROM unfamiliar_state WHERE user = ?1");
    delete_familiar.emplace(db, "DELETE FROM familiar_source WHERE user = ?1");
    insert_familiar.emplace(
        db, "INSERT INTO familiar_source (user, source, last_success) VALUES (?1, ?2, ?3)");
    insert_history.emplace(db,
                           "INSERT INTO history (time, user, event, service, rhost, tty, ruser, "
                           "admin_uid, detail, peer_uid, events, first_time) VALUES (?1, ?2, ?3, "
                           "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    // The key's columns are those of the history_aggregates index.
    fold_history.emplace(db,
                         "UPDATE history SET events = events + 1, time = max(time, ?1), "
                         "first_time = min(first_time, ?1), tty = ?2, ruser = ?3, detail = ?4 "
                         "WHERE first_time IS NOT NULL AND user = ?6 AND event = ?7 AND "
                         "service = ?8 AND rhost = ?9 AND peer_uid IS ?5");
    prune_slice_counted.emplace(
        db,
        "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE time < ?1 ORDER BY time "
        "LIMIT ?2) RETURNING peer_uid, first_time IS NOT NULL, user, event, service, rhost");
    prune.emplace(db, "DELETE FROM history WHERE time < ?1");
    insert_answered.emplace(db,
                            "INSERT INTO answered_event (event_id, peer_uid, user, type, time, "
                            "answer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    forget_answered.emplace(db,
                            "DELETE FROM answered_event WHERE time < ?1 OR seq <= "
                            "(SELECT max(seq) FROM answered_event) - ?2");
    prune_slice.emplace(db,
                        "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE time < ?1 "
                        "ORDER BY time LIMIT ?2)");
  }

  Connection db;
  // Declared after db, so finalized before it closes. Optional because the
  // tables they name exist only after the migrations ran.
  std::optional<Statement> begin, commit, put_state, delete_state, insert_history, prune,
      insert_answered, forget_answered;
  std::optional<Statement> prune_slice, put_source, delete_source, fold_history,
      prune_slice_counted;
  std::optional<Statement> put_unfamiliar, delete_unfamiliar, delete_familiar, insert_familiar;
};

struct SqliteStore::ReadSide {
  explicit ReadSide(const std::string& path) : db(path, SQLITE_OPEN_READWRITE) {
    db.exec("PRAGMA query_only = ON", "making the read connection read-only");
  }

  Connection db;
  Statement load_states{db,
                        "SELECT user, failures, last_failure, level, last_lock_end, locked, "
                        "lock_since, lock_until, manual, manual_reason, manual_since, "
                        "manual_admin_uid, manual_until, earlier_failures FROM user_state "
                        "ORDER BY user"};
  Statement load_sources{db,
                         "SELECT source, failures, last_failure, level, last_lock_end, locked, "
                         "lock_since, lock_until, manual, manual_reason, manual_since, "
                         "manual_admin_uid, manual_until, earlier_failures FROM source_state "
                         "ORDER BY source"};
  Statement load_unfamiliar{db,
                            "SELECT user, failures, last_failure, level, last_lock_end, locked, "
                            "lock_since, lock_until, manual, manual_reason, manual_since, "
                            "manual_admin_uid, manual_until, earlier_failures FROM "
                            "unfamiliar_state ORDER BY user"};
  Statement load_familiar{db,
                          "SELECT user, source, last_success FROM familiar_source "
                          "ORDER BY user, last_success DESC, source"};
  // Two statements rather than one with "?user IS NULL OR user = ?user": the
  // planner picks one index per statement, and each case wants its own.
  Statement history_all{db, history_sql("")};
  Statement history_of_user{db, history_sql("user = ?4 AND ")};
  Statement count_events{db,
                         "SELECT coalesce(sum(events), 0) FROM history WHERE event = ?1 AND "
                         "time >= ?2"};
  // What `stats` reads goes through history_failures_by_time (schema 8),
  // named: the planner would rather walk all of history_by_user_time than
  // sort the day's users, and a failure's table row is a random read.
  Statement count_failure_events{db, "SELECT coalesce(sum(events), 0) FROM history " +
                                         failures_by_time_sql() + " AND event = ?1 AND time >= ?2"};
  Statement count_rows{db, "SELECT count(*) FROM history"};
  Statement rows_by_peer_uid{db,
                             "SELECT peer_uid, count(*) FROM history WHERE peer_uid IS NOT NULL "
                             "AND peer_uid <> 0 GROUP BY peer_uid"};
  Statement aggregate_keys{db,
                           "SELECT peer_uid, user, event, service, rhost FROM history "
                           "WHERE first_time IS NOT NULL"};
  Statement load_answered{db,
                          "SELECT event_id, peer_uid, user, type, time, answer FROM answered_event "
                          "WHERE time >= ?1 ORDER BY seq DESC LIMIT ?2"};
  // count_failures: the rows since the earliest time asked, in one pass.
  Statement failure_rows{
      db, "SELECT time, event = '" + std::string(to_string(HistoryEvent::locked)) +
              "', events FROM history " + failures_by_time_sql() + " AND time >= ?1"};
  Statement failures_per_hour{db, "SELECT (time - ?1) / 3600 AS hour, sum(events) FROM history " +
                                      failures_by_time_sql() +
                                      " AND time >= ?1 AND time < ?2 GROUP BY hour"};
  Statement top_users{db, "SELECT user, sum(events) AS n FROM history " + failures_by_time_sql() +
                              " AND time >= ?1 GROUP BY user ORDER BY n DESC, user LIMIT ?2"};
  Statement top_rhosts{db, "SELECT rhost, sum(events) AS n FROM history " + failures_by_time_sql() +
                               " AND time >= ?1 AND rhost <> '' GROUP BY rhost ORDER BY n DESC, "
                               "rhost LIMIT ?2"};
  // SQLite groups with a sorter that spills to temp files: the distinct
  // origins of a flood never sit in memory at once.
  Statement failure_origins{
      db,
      "SELECT rhost, CASE WHEN rhost = '' THEN ruser ELSE '' END AS local_user, sum(events) "
      "FROM history " +
          failures_by_time_sql() + " AND time >= ?1 AND NOT (rhost = '" + kAnyOrigin +
          "' AND service = '" + kAnyOrigin + "') GROUP BY rhost, local_user"};

 private:
  // The failure rows, through the index that holds them (its WHERE term,
  // word for word, lets the planner use it).
  static std::string failures_by_time_sql() {
    return "INDEXED BY history_failures_by_time WHERE event IN " + failure_events_sql();
  }
  static std::string history_sql(const std::string& user_filter) {
    return "SELECT id, time, user, event, service, rhost, tty, ruser, admin_uid, detail, "
           "peer_uid, events, first_time FROM history WHERE " +
           user_filter + "time >= ?1 AND (?2 = 0 OR event IN " + failure_events_sql() +
           ") ORDER BY time DESC, id DESC LIMIT ?3";
  }
};

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  // Closing any descriptor of the file drops this process's POSIX locks on
  // it, SQLite's included: the connections go first, in the order the
  // members give (the reader, then the writer, whose close checkpoints).
  reader_.reset();
  writer_.reset();
  if (identity_fd_ >= 0) ::close(identity_fd_);
}

std::string SqliteStore::file_problem() {
  std::lock_guard lock(problem_mutex_);
  if (!problem_.empty() || identity_fd_ < 0) return problem_;
  struct stat opened {};
  struct stat named {};
  if (fstat(identity_fd_, &opened) != 0) {
    problem_ = path_ + ": cannot check the open database file: " + std::strerror(errno);
  } else if (::stat(path_.c_str(), &named) != 0) {
    problem_ =
        path_ + (opened.st_nlink == 0
                     ? std::string(": the database file was deleted while acctlockd had it open")
                     : ": the database file was moved away while acctlockd had it open (" +
                           std::string(std::strerror(errno)) + ")");
  } else if (named.st_dev != opened.st_dev || named.st_ino != opened.st_ino) {
    problem_ =
        path_ + ": the database file was replaced by another file while acctlockd had it open";
  }
  if (!problem_.empty()) {
    problem_ += "; nothing more can be saved to it: restart acctlockd";
  }
  return problem_;
}

std::unique_ptr<SqliteStore> SqliteStore::open(const std::string& path, std::string host_name) {
  check_directory(path);
  // A new database is created 0600 whatever the umask (a daemon started by
  // hand under umask 022 must not leave login history world-readable); SQLite
  // gives its -wal and -shm files the database file's mode. O_EXCL: an
  // existing file is not touched here.
  const int created =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (created >= 0) {
    if (fchmod(created, 0600) != 0) {
      const int error = errno;
      ::close(created);
      throw StoreError(path + ": cannot set mode 0600: " + std::strerror(error));
    }
    ::close(created);
  } else if (errno != EEXIST) {
    throw StoreError(path + ": cannot create: " + std::strerror(errno));
  }
  // SQLite falls back to read-only for a -wal or -shm file it may not write
  // and fails later, at the first write, with a message about something
  // else; say what is wrong before touching anything.
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string companion = path + suffix;
    if (::access(companion.c_str(), F_OK) == 0 && ::access(companion.c_str(), R_OK | W_OK) != 0) {
      throw StoreError(companion + ": not writable (" + std::strerror(errno) +
                       "); it must belong to the user acctlockd runs as, like the database");
    }
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
  store->host_name_ = std::move(host_name);
  // Before SQLite sees the log: its recovery drops what follows a damaged
  // frame without a word.
  const WalInspection wal = inspect_wal(path + "-wal");
  if (wal.outcome == WalInspection::Outcome::damaged_middle) throw StoreError(wal.description);
  if (wal.outcome == WalInspection::Outcome::damaged_tail) {
    store->open_warnings_.push_back(wal.description);
  }
  check_before_writing(path);

  store->writer_ = std::make_unique<WriteSide>(path);
  const Connection& db = store->writer_->db;
  // Closing the last connection to a database with a -wal file checkpoints
  // the WAL into the main file and deletes it: a refused file would be
  // rewritten on the way out. No checkpoint on close until the file passes.
  set_checkpoint_on_close(db, false);
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    // SQLite falls back to read-only when it may not write; a store that
    // cannot record a failure must not start.
    throw StoreError(path + ": not writable");
  }
  // Checked again on the connection that writes: the file may have been
  // swapped between the two opens. Still before any write.
  refuse_newer(db, stored_version(db));

  {
    Statement journal(db, "PRAGMA journal_mode = WAL");
    Statement::Use use(journal);
    if (!journal.step("switching to WAL mode") || journal.text(0) != "wal") {
      throw StoreError(path + ": cannot switch to WAL mode (journal mode is " + journal.text(0) +
                       ")");
    }
  }
  configure(db);
  migrate(db);
  store->writer_->prepare();
  store->identity_fd_ = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (store->identity_fd_ < 0) {
    throw StoreError(path + ": cannot open to watch it: " + std::strerror(errno));
  }
  // Trusted now: a clean stop folds the WAL in and removes it again, which
  // is what tells the next start that no full check is needed.
  set_checkpoint_on_close(db, true);

  store->reader_ = std::make_unique<ReadSide>(path);
  configure(store->reader_->db);
  return store;
}

std::vector<std::pair<std::string, UserState>> SqliteStore::load_states() {
  std::vector<std::pair<std::string, UserState>> states;
  for_each_state([&](std::string user, UserState state) {
    states.emplace_back(std::move(user), std::move(state));
  });
  return states;
}

void SqliteStore::for_each_state(const std::function<void(std::string, UserState)>& visit) {
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->load_states;
  Statement::Use use(select);
  while (select.step("reading user states")) {
    std::string user = select.text(0);
    UserState state = read_state(select, "user " + user);
    visit(std::move(user), std::move(state));
  }
}

std::vector<std::pair<std::string, UserState>> SqliteStore::load_sources() {
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->load_sources;
  Statement::Use use(select);
  std::vector<std::pair<std::string, UserState>> sources;
  while (select.step("reading source states")) {
    std::string source = select.text(0);
    UserState state = read_state(select, "source " + source);
    sources.emplace_back(std::move(source), std::move(state));
  }
  return sources;
}

std::vector<std::pair<std::string, UserState>> SqliteStore::load_unfamiliar_states() {
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->load_unfamiliar;
  Statement::Use use(select);
  std::vector<std::pair<std::string, UserState>> states;
  while (select.step("reading unfamiliar-source states")) {
    std::string user = select.text(0);
    UserState state = read_state(select, "unfamiliar-source state of user " + user);
    states.emplace_back(std::move(user), std::move(state));
  }
  return states;
}

std::vector<std::pair<std::string, std::vector<FamiliarSource>>>
SqliteStore::load_familiar_sources() {
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->load_familiar;
  Statement::Use use(select);
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> users;
  while (select.step("reading familiar sources")) {
    std::string user = select.text(0);
    if (users.empty() || users.back().first != user)
      users.emplace_back(std::move(user), std::vector<FamiliarSource>{});
    users.back().second.push_back(FamiliarSource{select.text(1), select.time(2)});
  }
  return users;
}

CommitOutcome SqliteStore::commit(const StoreBatch& batch) {
  if (batch.empty()) return {};
  if (std::string problem = file_problem(); !problem.empty()) throw StoreError(std::move(problem));
  std::lock_guard lock(write_mutex_);
  WriteSide& w = *writer_;
  constexpr std::string_view doing = "commit";
  w.begin->run(doing);
  try {
    for (const auto& [user, state] : batch.put_states) {
      // Outlives the statement's use: bound without a copy.
      const std::string earlier = encode_failure_times(state.earlier_failures);
      Statement& put = *w.put_state;
      Statement::Use use(put);
      bind_state(put, user, state, earlier);
      put.step(doing);
    }
    for (const auto& [source, state] : batch.put_sources) {
      const std::string earlier = encode_failure_times(state.earlier_failures);
      Statement& put = *w.put_source;
      Statement::Use use(put);
      bind_state(put, source, state, earlier);
      put.step(doing);
    }
    for (const std::string& source : batch.delete_sources) {
      Statement& remove = *w.delete_source;
      Statement::Use use(remove);
      remove.bind(1, std::string_view(source));
      remove.step(doing);
    }
    for (const std::string& user : batch.delete_states) {
      Statement& remove = *w.delete_state;
      Statement::Use use(remove);
      remove.bind(1, std::string_view(user));
      remove.step(doing);
    }
    for (const auto& [user, state] : batch.put_unfamiliar_states) {
      const std::string earlier = encode_failure_times(state.earlier_failures);
      Statement& put = *w.put_unfamiliar;
      Statement::Use use(put);
      bind_state(put, user, state, earlier);
      put.step(doing);
    }
    for (const std::string& user : batch.delete_unfamiliar_states) {
      Statement& remove = *w.delete_unfamiliar;
      Statement::Use use(remove);
      remove.bind(1, std::string_view(user));
      remove.step(doing);
    }
    for (const auto& [user, sources] : batch.put_familiar_sources) {
      {
        Statement& remove = *w.delete_familiar;
        Statement::Use use(remove);
        remove.bind(1, std::string_view(user));
        remove.step(doing);
      }
      for (const FamiliarSource& source : sources) {
        Statement& insert = *w.insert_familiar;
        Statement::Use use(insert);
        insert.bind(1, std::string_view(user));
        insert.bind(2, std::string_view(source.key));
        insert.bind(3, source.last_success);
        insert.step(doing);
      }
    }
    for (const HistoryEntry& entry : batch.history) {
      if (entry.is_aggregate()) {
        // One more event for its aggregate row, or the first one.
        Statement& fold = *w.fold_history;
        Statement::Use use(fold);
        fold.bind(1, entry.time);
        fold.bind(2, std::string_view(entry.tty));
        fold.bind(3, std::string_view(entry.ruser));
        fold.bind(4, std::string_view(entry.detail));
        fold.bind(5, entry.peer_uid);
        fold.bind(6, std::string_view(entry.user));
        fold.bind(7, std::string_view(to_string(entry.event)));
        fold.bind(8, std::string_view(entry.service));
        fold.bind(9, std::string_view(entry.rhost));
        fold.step(doing);
        if (sqlite3_changes64(w.db.get()) > 0) continue;
      }
      Statement& insert = *w.insert_history;
      Statement::Use use(insert);
      insert.bind(1, entry.time);
      insert.bind(2, std::string_view(entry.user));
      insert.bind(3, std::string_view(to_string(entry.event)));
      insert.bind(4, std::string_view(entry.service));
      insert.bind(5, std::string_view(entry.rhost));
      insert.bind(6, std::string_view(entry.tty));
      insert.bind(7, std::string_view(entry.ruser));
      insert.bind(8, entry.admin_uid);
      insert.bind(9, std::string_view(entry.detail));
      insert.bind(10, entry.peer_uid);
      insert.bind(11, static_cast<std::int64_t>(entry.is_aggregate() ? 1 : entry.count));
      insert.bind(12, entry.first_time);
      insert.step(doing);
    }
    for (const AnsweredEvent& answered : batch.answered) {
      Statement& insert = *w.insert_answered;
      Statement::Use use(insert);
      insert.bind(1, static_cast<std::int64_t>(answered.id));  // SQLite integers are signed
      insert.bind(2, answered.peer_uid);
      insert.bind(3, std::string_view(answered.user));
      insert.bind(4, std::int64_t{answered.type});
      insert.bind(5, answered.time);
      insert.bind_blob(6, answered.answer_frame);
      insert.step(doing);
    }
    if (batch.forget_answered_before) {
      Statement& forget = *w.forget_answered;
      Statement::Use use(forget);
      forget.bind(1, *batch.forget_answered_before);
      forget.bind(2, static_cast<std::int64_t>(kMaxAnsweredEvents));
      forget.step(doing);
    }
    w.commit->run(doing);
  } catch (...) {
    w.db.roll_back();
    throw;
  }
  return {};  // one host's own rows: its view of them is the state
}

std::vector<AnsweredEvent> SqliteStore::load_answered(TimePoint since) {
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->load_answered;
  Statement::Use use(select);
  select.bind(1, since);
  select.bind(2, static_cast<std::int64_t>(kMaxAnsweredEvents));
  std::vector<AnsweredEvent> out;
  while (select.step("reading answered events")) {
    AnsweredEvent answered;
    answered.id = static_cast<std::uint64_t>(select.int64(0));
    answered.peer_uid = select.uint32(1);
    answered.user = select.text(2);
    answered.type = static_cast<std::uint8_t>(select.uint32(3));
    answered.time = select.time(4);
    answered.answer_frame = select.blob(5);
    out.push_back(std::move(answered));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<HistoryEntry> SqliteStore::history(const HistoryQuery& query) {
  if (!holds_host(query.host)) return {};
  std::lock_guard lock(read_mutex_);
  Statement& select = query.user ? reader_->history_of_user : reader_->history_all;
  Statement::Use use(select);
  select.bind(1, query.since ? to_unix(*query.since) : std::numeric_limits<std::int64_t>::min());
  select.bind(2, query.failures_only);
  select.bind(3, sql_limit(query.limit));
  if (query.user) select.bind(4, std::string_view(*query.user));

  std::vector<HistoryEntry> entries;
  while (select.step("reading history")) {
    HistoryEntry& entry = entries.emplace_back();
    entry.id = select.int64(0);
    entry.time = select.time(1);
    entry.user = select.text(2);
    const std::string event = select.text(3);
    const auto parsed = history_event_from_string(event);
    if (!parsed) {
      throw StoreError(path_ + ": history row " + std::to_string(entry.id) +
                       " has an unknown event \"" + event + "\"");
    }
    entry.event = *parsed;
    entry.service = select.text(4);
    entry.rhost = select.text(5);
    entry.tty = select.text(6);
    entry.ruser = select.text(7);
    if (!select.is_null(8)) entry.admin_uid = select.uint32(8);
    entry.detail = select.text(9);
    if (!select.is_null(10)) entry.peer_uid = select.uint32(10);
    const std::int64_t events = select.int64(11);
    if (events < 1) {
      throw StoreError(path_ + ": history row " + std::to_string(entry.id) + " stands for " +
                       std::to_string(events) + " events");
    }
    entry.count = static_cast<std::uint64_t>(events);
    if (!select.is_null(12)) entry.first_time = select.time(12);
    entry.host = host_name_;
  }
  return entries;
}

std::uint64_t SqliteStore::count_events(HistoryEvent event, TimePoint since,
                                        const std::optional<std::string>& host) {
  if (!holds_host(host)) return 0;
  std::lock_guard lock(read_mutex_);
  const bool failure_event = event == HistoryEvent::failure || event == HistoryEvent::locked;
  Statement& count = failure_event ? reader_->count_failure_events : reader_->count_events;
  Statement::Use use(count);
  count.bind(1, std::string_view(to_string(event)));
  count.bind(2, since);
  if (!count.step("counting events")) return 0;
  return static_cast<std::uint64_t>(count.int64(0));
}

std::vector<std::pair<std::string, std::uint64_t>> SqliteStore::top_failures(
    TimePoint since, bool by_rhost, std::size_t limit, const std::optional<std::string>& host) {
  if (!holds_host(host)) return {};
  std::lock_guard lock(read_mutex_);
  Statement& select = by_rhost ? reader_->top_rhosts : reader_->top_users;
  Statement::Use use(select);
  select.bind(1, since);
  select.bind(2, sql_limit(limit));
  std::vector<std::pair<std::string, std::uint64_t>> top;
  while (select.step("ranking failures")) {
    top.emplace_back(select.text(0), static_cast<std::uint64_t>(select.int64(1)));
  }
  return top;
}

void SqliteStore::for_each_failure_origin(
    TimePoint since,
    const std::function<void(std::string_view, std::string_view, std::uint64_t)>& visit,
    const std::optional<std::string>& host) {
  if (!holds_host(host)) return;
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->failure_origins;
  Statement::Use use(select);
  select.bind(1, since);
  while (select.step("reading the origins of failures")) {
    visit(select.text(0), select.text(1), static_cast<std::uint64_t>(select.int64(2)));
  }
}

std::uint64_t SqliteStore::prune_history(TimePoint before) {
  std::lock_guard lock(write_mutex_);
  Statement& prune = *writer_->prune;
  Statement::Use use(prune);
  prune.bind(1, before);
  prune.step("pruning history");
  return static_cast<std::uint64_t>(sqlite3_changes64(writer_->db.get()));
}

std::uint64_t SqliteStore::prune_history_slice(TimePoint before, std::size_t limit) {
  std::lock_guard lock(write_mutex_);
  Statement& prune = *writer_->prune_slice;
  Statement::Use use(prune);
  prune.bind(1, before);
  prune.bind(2, sql_limit(limit));
  prune.step("pruning history");
  return static_cast<std::uint64_t>(sqlite3_changes64(writer_->db.get()));
}

std::vector<std::uint64_t> SqliteStore::failures_per_hour(TimePoint from, std::size_t hours,
                                                          const std::optional<std::string>& host) {
  if (!holds_host(host)) return std::vector<std::uint64_t>(hours, 0);
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->failures_per_hour;
  Statement::Use use(select);
  select.bind(1, from);
  select.bind(2, from + std::chrono::hours(static_cast<std::int64_t>(hours)));
  std::vector<std::uint64_t> counts(hours, 0);
  while (select.step("counting failures per hour")) {
    const std::int64_t hour = select.int64(0);
    if (hour >= 0 && static_cast<std::size_t>(hour) < hours) {
      counts[static_cast<std::size_t>(hour)] = static_cast<std::uint64_t>(select.int64(1));
    }
  }
  return counts;
}

Store::FailureCounts SqliteStore::count_failures(TimePoint hour_ago, TimePoint day_ago,
                                                 TimePoint hours_from, std::size_t hours,
                                                 const std::optional<std::string>& host) {
  FailureCounts counts;
  counts.per_hour.assign(hours, 0);
  if (!holds_host(host)) return counts;
  const std::int64_t hours_start = to_unix(hours_from);
  const std::int64_t hours_end = hours_start + static_cast<std::int64_t>(hours) * 3600;
  std::lock_guard lock(read_mutex_);
  Statement& select = reader_->failure_rows;
  Statement::Use use(select);
  select.bind(1, std::min({hour_ago, day_ago, hours_from}));
  while (select.step("counting failures")) {
    const std::int64_t time = select.int64(0);
    const bool locked = select.boolean(1);
    const auto events = static_cast<std::uint64_t>(select.int64(2));
    if (time >= to_unix(day_ago)) {
      counts.failures_last_day += events;
      if (locked) counts.lockouts_last_day += events;
    }
    if (time >= to_unix(hour_ago)) {
      counts.failures_last_hour += events;
      if (locked) counts.lockouts_last_hour += events;
    }
    if (time >= hours_start && time < hours_end) {
      counts.per_hour[static_cast<std::size_t>((time - hours_start) / 3600)] += events;
    }
  }
  return counts;
}

namespace {

// One row of history_usage() or of a counted prune: peer_uid, whether the row
// is an aggregate, and the aggregate key's other columns.
void count_usage_row(Statement& row, const std::string& path, HistoryUsage& usage) {
  ++usage.rows;
  std::optional<std::uint32_t> peer_uid;
  if (!row.is_null(0)) peer_uid = row.uint32(0);
  if (peer_uid && *peer_uid != 0) ++usage.rows_by_peer_uid[*peer_uid];
  if (!row.boolean(1)) return;
  const std::string event = row.text(3);
  const auto parsed = history_event_from_string(event);
  if (!parsed) {
    throw StoreError(path + ": an aggregate history row has an unknown event \"" + event + "\"");
  }
  usage.aggregates.push_back(
      HistoryAggregateKey{peer_uid, row.text(2), *parsed, row.text(4), row.text(5)});
}

}  // namespace

HistoryUsage SqliteStore::prune_history_slice_counted(TimePoint before, std::size_t limit) {
  std::lock_guard lock(write_mutex_);
  Statement& prune = *writer_->prune_slice_counted;
  HistoryUsage removed;
  // RETURNING rows come while the statement runs; its changes count only
  // once it is done, so the whole slice is read before the reset.
  Statement::Use use(prune);
  prune.bind(1, before);
  prune.bind(2, sql_limit(limit));
  while (prune.step("pruning history")) count_usage_row(prune, path_, removed);
  return removed;
}

HistoryUsage SqliteStore::history_usage() {
  std::lock_guard lock(read_mutex_);
  HistoryUsage usage;
  {
    Statement& count = reader_->count_rows;
    Statement::Use use(count);
    if (count.step("counting history rows")) {
      usage.rows = static_cast<std::uint64_t>(count.int64(0));
    }
  }
  {
    Statement& select = reader_->rows_by_peer_uid;
    Statement::Use use(select);
    while (select.step("counting history rows by peer")) {
      usage.rows_by_peer_uid[select.uint32(0)] = static_cast<std::uint64_t>(select.int64(1));
    }
  }
  Statement& select = reader_->aggregate_keys;
  Statement::Use use(select);
  while (select.step("reading aggregate history rows")) {
    const std::string event = select.text(2);
    const auto parsed = history_event_from_string(event);
    if (!parsed) {
      throw StoreError(path_ + ": an aggregate history row has an unknown event \"" + event + "\"");
    }
    HistoryAggregateKey key;
    if (!select.is_null(0)) key.peer_uid = select.uint32(0);
    key.user = select.text(1);
    key.event = *parsed;
    key.service = select.text(3);
    key.rhost = select.text(4);
    usage.aggregates.push_back(std::move(key));
  }
  return usage;
}

}  // namespace acctlock
