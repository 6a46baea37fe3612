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

void LocalOutbox::append(const std::vector<ReplayableEvent>& events) {
  if (events.empty()) return;
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
    exec("COMMIT", "appending");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  size_ += events.size();
}

std::vector<LocalOutbox::Entry> LocalOutbox::oldest(std::size_t limit, std::int64_t after) {
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

}  // namespace acctlock
