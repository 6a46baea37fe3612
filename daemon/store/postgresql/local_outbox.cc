// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/postgresql/local_outbox.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string_view>

namespace acctlock {
namespace {

// "aclo" (acctlock outbox): tells this file from any other SQLite file.
constexpr int kApplicationId = 0x61636c6f;

struct StatementDeleter {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

std::string random_generation() {
  std::random_device device;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < 4; ++i) {
    std::uint32_t word = device();
    for (int j = 0; j < 8; ++j, word >>= 4) text += kHex[word & 15];
  }
  return text;
}

// One table for both directions, as store.cc's event names: a kind cannot
// be added to one and not the other. The names are stored in outbox files
// that outlive an upgrade: never rename one.
struct KindName {
  ReplayableEvent::Kind kind;
  const char* name;
};

constexpr std::array<KindName, 5> kKindNames{{
    {ReplayableEvent::Kind::request, "request"},
    {ReplayableEvent::Kind::lock, "lock"},
    {ReplayableEvent::Kind::unlock, "unlock"},
    {ReplayableEvent::Kind::lock_source, "lock_source"},
    {ReplayableEvent::Kind::unlock_source, "unlock_source"},
}};

const char* kind_name(ReplayableEvent::Kind kind) {
  for (const auto& entry : kKindNames) {
    if (entry.kind == kind) return entry.name;
  }
  return "request";
}

std::optional<ReplayableEvent::Kind> kind_from_name(std::string_view name) {
  for (const auto& entry : kKindNames) {
    if (name == entry.name) return entry.kind;
  }
  return std::nullopt;
}

std::string column_text(sqlite3_stmt* statement, int column) {
  const auto* text = sqlite3_column_text(statement, column);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            static_cast<std::size_t>(sqlite3_column_bytes(statement, column)))
              : std::string();
}

}  // namespace

LocalOutbox::LocalOutbox(std::string path) : path_(std::move(path)) {
  // Created 0600 before SQLite opens it: the events name users and addresses.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    throw StoreError(path_ + ": cannot open the fleet outbox: " + std::strerror(errno));
  }
  ::close(fd);
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    fail("opening");
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA synchronous = FULL", "setting synchronous=FULL");
  Statement id;
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA application_id", -1, &raw, nullptr) != SQLITE_OK) {
    fail("reading the application id");
  }
  id.reset(raw);
  const int application_id = sqlite3_step(id.get()) == SQLITE_ROW ? sqlite3_column_int(id.get(), 0)
                                                                   : 0;
  id.reset();
  if (application_id == 0) {
    // New: make the table and the generation in one transaction.
    exec("BEGIN IMMEDIATE", "creating the outbox");
    try {
      exec("CREATE TABLE IF NOT EXISTS generation (id TEXT NOT NULL)", "creating the outbox");
      exec(
          "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER "
          "NOT NULL, kind TEXT NOT NULL, type INTEGER NOT NULL, flags INTEGER NOT NULL, event_id "
          "INTEGER NOT NULL, user TEXT NOT NULL, service TEXT NOT NULL, rhost TEXT NOT NULL, tty "
          "TEXT NOT NULL, ruser TEXT NOT NULL, is_root INTEGER NOT NULL, may_reset INTEGER NOT "
          "NULL, peer_uid INTEGER, key TEXT NOT NULL, reason TEXT NOT NULL, admin_uid INTEGER NOT "
          "NULL, duration INTEGER)",
          "creating the outbox");
      const std::string insert =
          "DELETE FROM generation; INSERT INTO generation VALUES ('" + random_generation() + "')";
      exec(insert.c_str(), "creating the outbox");
      exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str(),
           "creating the outbox");
      exec("COMMIT", "creating the outbox");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } else if (application_id != kApplicationId) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw StoreError(path_ + ": not an acctlock fleet outbox (another program's SQLite file?); "
                             "left alone");
  }
  // Write-ahead logging: the copy's rows are written after each commit of
  // the fleet's, without an fsync each (synchronous = NORMAL for them);
  // appends stay synchronous = FULL, and their fsync takes the rows before
  // them along. The copy's tables join files made before they existed.
  exec("PRAGMA journal_mode = WAL", "setting journal_mode=WAL");
  exec(
      "CREATE TABLE IF NOT EXISTS copy_state (tbl TEXT NOT NULL, key TEXT NOT NULL, failures "
      "INTEGER NOT NULL, last_failure INTEGER NOT NULL, level INTEGER NOT NULL, last_lock_end "
      "INTEGER NOT NULL, locked INTEGER NOT NULL, lock_since INTEGER, lock_until INTEGER, manual "
      "INTEGER NOT NULL, manual_reason TEXT, manual_since INTEGER, manual_admin_uid INTEGER, "
      "manual_until INTEGER, earlier_failures TEXT NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT "
      "ROWID;"
      "CREATE TABLE IF NOT EXISTS copy_familiar (user TEXT NOT NULL, source TEXT NOT NULL, "
      "last_success INTEGER NOT NULL, PRIMARY KEY (user, source)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS copy_written (time INTEGER NOT NULL)",
      "creating the local copy of the fleet's rows");
  if (sqlite3_prepare_v2(db_, "SELECT (SELECT id FROM generation), (SELECT count(*) FROM outbox)",
                         -1, &raw, nullptr) != SQLITE_OK) {
    fail("reading the outbox");
  }
  Statement totals(raw);
  if (sqlite3_step(totals.get()) != SQLITE_ROW) fail("reading the outbox");
  generation_ = column_text(totals.get(), 0);
  size_ = static_cast<std::uint64_t>(sqlite3_column_int64(totals.get(), 1));
  if (generation_.empty()) throw StoreError(path_ + ": the fleet outbox has no generation");
}

LocalOutbox::~LocalOutbox() {
  sqlite3_close_v2(db_);
}

void LocalOutbox::exec(const char* sql, const char* doing) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(doing);
}

void LocalOutbox::fail(const char* doing) const {
  throw StoreError(path_ + ": fleet outbox: " + doing + ": " +
                   (db_ ? sqlite3_errmsg(db_) : "cannot open"));
}

std::uint64_t LocalOutbox::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

void LocalOutbox::append(const std::vector<ReplayableEvent>& events,
                         const std::vector<SharedStateChange>& rows) {
  if (events.empty() && rows.empty()) return;
  std::lock_guard lock(mutex_);
  if (size_ + events.size() > kMaxOutboxEvents) {
    throw StoreError(path_ + ": the fleet outbox holds " + std::to_string(size_) +
                     " events, its bound: PostgreSQL has been away too long to keep more");
  }
  exec("BEGIN IMMEDIATE", "appending");
  try {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "INSERT INTO outbox (time, kind, type, flags, event_id, user, service, "
                           "rhost, tty, ruser, is_root, may_reset, peer_uid, key, reason, "
                           "admin_uid, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                           "?, ?, ?)",
                           -1, &raw, nullptr) != SQLITE_OK) {
      fail("appending");
    }
    Statement insert(raw);
    for (const ReplayableEvent& event : events) {
      sqlite3_reset(insert.get());
      sqlite3_clear_bindings(insert.get());
      const auto text = [&](int index, const std::string& value) {
        sqlite3_bind_text(insert.get(), index, value.data(), static_cast<int>(value.size()),
                          SQLITE_TRANSIENT);
      };
      sqlite3_bind_int64(insert.get(), 1, event.time.time_since_epoch().count());
      sqlite3_bind_text(insert.get(), 2, kind_name(event.kind), -1, SQLITE_STATIC);
      sqlite3_bind_int(insert.get(), 3, static_cast<int>(event.request.type));
      sqlite3_bind_int(insert.get(), 4,
                       (event.request.user_is_root ? protocol::kFlagUserIsRoot : 0) |
                           (event.request.user_unknown ? protocol::kFlagUserUnknown : 0));
      sqlite3_bind_int64(insert.get(), 5, static_cast<sqlite3_int64>(event.request.event_id));
      text(6, event.request.user);
      text(7, event.request.service);
      text(8, event.request.rhost);
      text(9, event.request.tty);
      text(10, event.request.ruser);
      sqlite3_bind_int(insert.get(), 11, event.is_root ? 1 : 0);
      sqlite3_bind_int(insert.get(), 12, event.may_reset ? 1 : 0);
      if (event.peer_uid) sqlite3_bind_int64(insert.get(), 13, *event.peer_uid);
      text(14, event.key);
      text(15, event.reason);
      sqlite3_bind_int64(insert.get(), 16, event.admin_uid);
      if (event.duration) sqlite3_bind_int64(insert.get(), 17, event.duration->count());
      if (sqlite3_step(insert.get()) != SQLITE_DONE) fail("appending");
    }
    insert.reset();
    write_rows(rows);
    exec("COMMIT", "appending");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  size_ += events.size();
}

std::vector<LocalOutbox::Entry> LocalOutbox::oldest(std::size_t limit, std::int64_t after) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT seq, time, kind, type, flags, event_id, user, service, rhost, "
                         "tty, ruser, is_root, may_reset, peer_uid, key, reason, admin_uid, "
                         "duration FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                         -1, &raw, nullptr) != SQLITE_OK) {
    fail("reading");
  }
  Statement select(raw);
  sqlite3_bind_int64(select.get(), 1, after);
  sqlite3_bind_int64(select.get(), 2, static_cast<sqlite3_int64>(limit));
  std::vector<Entry> entries;
  int rc;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    sqlite3_stmt* row = select.get();
    Entry entry;
    entry.seq = sqlite3_column_int64(row, 0);
    ReplayableEvent& event = entry.event;
    event.time = TimePoint{Seconds{sqlite3_column_int64(row, 1)}};
    const std::string kind = column_text(row, 2);
    const auto parsed = kind_from_name(kind);
    if (!parsed) {
      throw StoreError(path_ + ": fleet outbox: event " + std::to_string(entry.seq) +
                       " has an unknown kind \"" + kind + "\"");
    }
    event.kind = *parsed;
    event.request.type = static_cast<protocol::MessageType>(sqlite3_column_int(row, 3));
    const int flags = sqlite3_column_int(row, 4);
    event.request.user_is_root = (flags & protocol::kFlagUserIsRoot) != 0;
    event.request.user_unknown = (flags & protocol::kFlagUserUnknown) != 0;
    event.request.event_id = static_cast<std::uint64_t>(sqlite3_column_int64(row, 5));
    event.request.user = column_text(row, 6);
    event.request.service = column_text(row, 7);
    event.request.rhost = column_text(row, 8);
    event.request.tty = column_text(row, 9);
    event.request.ruser = column_text(row, 10);
    event.is_root = sqlite3_column_int(row, 11) != 0;
    event.may_reset = sqlite3_column_int(row, 12) != 0;
    if (sqlite3_column_type(row, 13) != SQLITE_NULL) {
      event.peer_uid = static_cast<std::uint32_t>(sqlite3_column_int64(row, 13));
    }
    event.key = column_text(row, 14);
    event.reason = column_text(row, 15);
    event.admin_uid = static_cast<std::uint32_t>(sqlite3_column_int64(row, 16));
    if (sqlite3_column_type(row, 17) != SQLITE_NULL) {
      event.duration = Seconds{sqlite3_column_int64(row, 17)};
    }
    entries.push_back(std::move(entry));
  }
  if (rc != SQLITE_DONE) fail("reading");
  return entries;
}

void LocalOutbox::remove_through(std::int64_t seq) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "DELETE FROM outbox WHERE seq <= ?", -1, &raw, nullptr) !=
      SQLITE_OK) {
    fail("deleting replayed events");
  }
  Statement remove(raw);
  sqlite3_bind_int64(remove.get(), 1, seq);
  if (sqlite3_step(remove.get()) != SQLITE_DONE) fail("deleting replayed events");
  const auto removed = static_cast<std::uint64_t>(sqlite3_changes(db_));
  size_ -= std::min(size_, removed);
}

namespace {

const char* table_tag(SharedTable table) {
  switch (table) {
    case SharedTable::users:
      return "user";
    case SharedTable::sources:
      return "source";
    case SharedTable::unfamiliar:
      return "unfamiliar";
    case SharedTable::familiar:
      return "familiar";
  }
  return "user";
}

Statement prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return Statement{};
  return Statement(raw);
}

void bind_text(sqlite3_stmt* statement, int index, const std::string& value) {
  sqlite3_bind_text(statement, index, value.data(), static_cast<int>(value.size()),
                    SQLITE_TRANSIENT);
}

std::int64_t unix_of(TimePoint time) {
  return time.time_since_epoch().count();
}
TimePoint time_of(sqlite3_stmt* statement, int column) {
  return TimePoint{Seconds{sqlite3_column_int64(statement, column)}};
}

// copy_state's columns after tbl and key, bound from index 3 on.
void bind_state(sqlite3_stmt* statement, const UserState& state) {
  sqlite3_bind_int64(statement, 3, state.failures);
  sqlite3_bind_int64(statement, 4, unix_of(state.last_failure));
  sqlite3_bind_int64(statement, 5, state.level);
  sqlite3_bind_int64(statement, 6, unix_of(state.last_lock_end));
  sqlite3_bind_int(statement, 7, state.failure_lock ? 1 : 0);
  if (state.failure_lock) {
    sqlite3_bind_int64(statement, 8, unix_of(state.failure_lock->since));
    if (state.failure_lock->until) {
      sqlite3_bind_int64(statement, 9, unix_of(*state.failure_lock->until));
    }
  }
  sqlite3_bind_int(statement, 10, state.manual_lock ? 1 : 0);
  if (state.manual_lock) {
    bind_text(statement, 11, state.manual_lock->reason);
    sqlite3_bind_int64(statement, 12, unix_of(state.manual_lock->since));
    sqlite3_bind_int64(statement, 13, state.manual_lock->admin_uid);
    if (state.manual_lock->until) {
      sqlite3_bind_int64(statement, 14, unix_of(*state.manual_lock->until));
    }
  }
  bind_text(statement, 15, encode_failure_times(state.earlier_failures));
}

constexpr const char* kInsertState =
    "INSERT OR REPLACE INTO copy_state (tbl, key, failures, last_failure, level, last_lock_end, "
    "locked, lock_since, lock_until, manual, manual_reason, manual_since, manual_admin_uid, "
    "manual_until, earlier_failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
constexpr const char* kInsertFamiliar =
    "INSERT OR REPLACE INTO copy_familiar (user, source, last_success) VALUES (?, ?, ?)";

}  // namespace

void LocalOutbox::write_rows(const std::vector<SharedStateChange>& rows) {
  if (rows.empty()) return;
  Statement put_state = prepare(db_, kInsertState);
  Statement drop_state = prepare(db_, "DELETE FROM copy_state WHERE tbl = ? AND key = ?");
  Statement put_familiar = prepare(db_, kInsertFamiliar);
  Statement drop_familiar = prepare(db_, "DELETE FROM copy_familiar WHERE user = ?");
  if (!put_state || !drop_state || !put_familiar || !drop_familiar) fail("writing the local copy");
  for (const SharedStateChange& row : rows) {
    if (row.table == SharedTable::familiar) {
      sqlite3_reset(drop_familiar.get());
      bind_text(drop_familiar.get(), 1, row.key);
      if (sqlite3_step(drop_familiar.get()) != SQLITE_DONE) fail("writing the local copy");
      for (const FamiliarSource& source : row.familiar) {
        sqlite3_reset(put_familiar.get());
        bind_text(put_familiar.get(), 1, row.key);
        bind_text(put_familiar.get(), 2, source.key);
        sqlite3_bind_int64(put_familiar.get(), 3, unix_of(source.last_success));
        if (sqlite3_step(put_familiar.get()) != SQLITE_DONE) fail("writing the local copy");
      }
      continue;
    }
    sqlite3_stmt* statement = row.state ? put_state.get() : drop_state.get();
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    sqlite3_bind_text(statement, 1, table_tag(row.table), -1, SQLITE_STATIC);
    bind_text(statement, 2, row.key);
    if (row.state) bind_state(statement, *row.state);
    if (sqlite3_step(statement) != SQLITE_DONE) fail("writing the local copy");
  }
  note_written();
}

void LocalOutbox::note_written() {
  const std::string sql = "DELETE FROM copy_written; INSERT INTO copy_written VALUES (" +
                          std::to_string(unix_of(wall_clock_now())) + ")";
  exec(sql.c_str(), "writing the local copy");
}

void LocalOutbox::keep_rows(const std::vector<SharedStateChange>& rows) {
  if (rows.empty()) return;
  std::lock_guard lock(mutex_);
  exec("PRAGMA synchronous = NORMAL", "writing the local copy");
  try {
    exec("BEGIN IMMEDIATE", "writing the local copy");
    try {
      write_rows(rows);
      exec("COMMIT", "writing the local copy");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } catch (...) {
    sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA synchronous = FULL", "writing the local copy");
}

void LocalOutbox::replace_rows(SharedTable table,
                               const std::vector<std::pair<std::string, UserState>>& rows) {
  std::lock_guard lock(mutex_);
  exec("PRAGMA synchronous = NORMAL", "writing the local copy");
  try {
    exec("BEGIN IMMEDIATE", "writing the local copy");
    try {
      Statement clear = prepare(db_, "DELETE FROM copy_state WHERE tbl = ?");
      Statement put = prepare(db_, kInsertState);
      if (!clear || !put) fail("writing the local copy");
      sqlite3_bind_text(clear.get(), 1, table_tag(table), -1, SQLITE_STATIC);
      if (sqlite3_step(clear.get()) != SQLITE_DONE) fail("writing the local copy");
      for (const auto& [key, state] : rows) {
        sqlite3_reset(put.get());
        sqlite3_clear_bindings(put.get());
        sqlite3_bind_text(put.get(), 1, table_tag(table), -1, SQLITE_STATIC);
        bind_text(put.get(), 2, key);
        bind_state(put.get(), state);
        if (sqlite3_step(put.get()) != SQLITE_DONE) fail("writing the local copy");
      }
      note_written();
      exec("COMMIT", "writing the local copy");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } catch (...) {
    sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA synchronous = FULL", "writing the local copy");
}

void LocalOutbox::replace_familiar(
    const std::vector<std::pair<std::string, std::vector<FamiliarSource>>>& users) {
  std::lock_guard lock(mutex_);
  exec("PRAGMA synchronous = NORMAL", "writing the local copy");
  try {
    exec("BEGIN IMMEDIATE", "writing the local copy");
    try {
      exec("DELETE FROM copy_familiar", "writing the local copy");
      Statement put = prepare(db_, kInsertFamiliar);
      if (!put) fail("writing the local copy");
      for (const auto& [user, sources] : users) {
        for (const FamiliarSource& source : sources) {
          sqlite3_reset(put.get());
          bind_text(put.get(), 1, user);
          bind_text(put.get(), 2, source.key);
          sqlite3_bind_int64(put.get(), 3, unix_of(source.last_success));
          if (sqlite3_step(put.get()) != SQLITE_DONE) fail("writing the local copy");
        }
      }
      note_written();
      exec("COMMIT", "writing the local copy");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } catch (...) {
    sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    throw;
  }
  exec("PRAGMA synchronous = FULL", "writing the local copy");
}

std::vector<std::pair<std::string, UserState>> LocalOutbox::copied_rows(SharedTable table) {
  std::lock_guard lock(mutex_);
  Statement select = prepare(
      db_,
      "SELECT key, failures, last_failure, level, last_lock_end, locked, lock_since, lock_until, "
      "manual, manual_reason, manual_since, manual_admin_uid, manual_until, earlier_failures "
      "FROM copy_state WHERE tbl = ? ORDER BY key");
  if (!select) fail("reading the local copy");
  sqlite3_bind_text(select.get(), 1, table_tag(table), -1, SQLITE_STATIC);
  std::vector<std::pair<std::string, UserState>> rows;
  int rc;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    sqlite3_stmt* row = select.get();
    std::string key = column_text(row, 0);
    UserState state;
    state.failures = static_cast<std::uint32_t>(sqlite3_column_int64(row, 1));
    state.last_failure = time_of(row, 2);
    state.level = static_cast<std::uint32_t>(sqlite3_column_int64(row, 3));
    state.last_lock_end = time_of(row, 4);
    if (sqlite3_column_int(row, 5) != 0) {
      FailureLock& lock_held = state.failure_lock.emplace();
      lock_held.since = time_of(row, 6);
      if (sqlite3_column_type(row, 7) != SQLITE_NULL) lock_held.until = time_of(row, 7);
    }
    if (sqlite3_column_int(row, 8) != 0) {
      ManualLock& manual = state.manual_lock.emplace();
      manual.reason = column_text(row, 9);
      manual.since = time_of(row, 10);
      manual.admin_uid = static_cast<std::uint32_t>(sqlite3_column_int64(row, 11));
      if (sqlite3_column_type(row, 12) != SQLITE_NULL) manual.until = time_of(row, 12);
    }
    state.earlier_failures = decode_failure_times(
        column_text(row, 13), path_ + ": local copy of " + table_tag(table) + " " + key);
    rows.emplace_back(std::move(key), std::move(state));
  }
  if (rc != SQLITE_DONE) fail("reading the local copy");
  return rows;
}

std::vector<std::pair<std::string, std::vector<FamiliarSource>>> LocalOutbox::copied_familiar() {
  std::lock_guard lock(mutex_);
  Statement select = prepare(db_,
                             "SELECT user, source, last_success FROM copy_familiar ORDER BY user, "
                             "last_success DESC, source");
  if (!select) fail("reading the local copy");
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> users;
  int rc;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    std::string user = column_text(select.get(), 0);
    if (users.empty() || users.back().first != user) {
      users.emplace_back(std::move(user), std::vector<FamiliarSource>{});
    }
    users.back().second.push_back(
        FamiliarSource{column_text(select.get(), 1), time_of(select.get(), 2)});
  }
  if (rc != SQLITE_DONE) fail("reading the local copy");
  return users;
}

std::optional<TimePoint> LocalOutbox::copy_written_at() {
  std::lock_guard lock(mutex_);
  Statement select = prepare(db_, "SELECT max(time) FROM copy_written");
  if (!select) fail("reading the local copy");
  if (sqlite3_step(select.get()) != SQLITE_ROW ||
      sqlite3_column_type(select.get(), 0) == SQLITE_NULL) {
    return std::nullopt;
  }
  return time_of(select.get(), 0);
}

}  // namespace acctlock
