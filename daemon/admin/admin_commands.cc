// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/admin/admin_commands.h"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <ctime>
#include <memory>
#include <set>
#include <stdexcept>

#include "common/protocol.h"
#include "common/user_name.h"
#include "daemon/log.h"
#include "daemon/policy/source_ranking.h"

namespace acctlock {
namespace {

using admin::Result;
using nlohmann::json;

// A bad argument: the handler stops and the caller gets an `invalid` answer.
class InvalidArgument : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string user_argument(const json& arguments) {
  const auto found = arguments.find("user");
  if (found == arguments.end() || !found->is_string()) {
    throw InvalidArgument("argument \"user\" (a string) is required");
  }
  const auto& user = found->get_ref<const std::string&>();
  if (!is_valid_user_name(user)) throw InvalidArgument("\"user\" is not a valid user name");
  return user;
}

bool bool_argument(const json& arguments, const char* key) {
  const auto found = arguments.find(key);
  if (found == arguments.end() || found->is_null()) return false;
  if (!found->is_boolean())
    throw InvalidArgument(std::string("\"") + key + "\" must be true or false");
  return found->get<bool>();
}

std::optional<std::int64_t> integer_argument(const json& arguments, const char* key) {
  const auto found = arguments.find(key);
  if (found == arguments.end() || found->is_null()) return std::nullopt;
  if (!found->is_number_integer()) {
    throw InvalidArgument(std::string("\"") + key + "\" must be an integer");
  }
  return found->get<std::int64_t>();
}

// A paged command's "limit" (list, sources): how many rows one answer holds.
std::size_t page_limit(const json& arguments) {
  const auto given = integer_argument(arguments, "limit");
  if (!given) return admin::kDefaultListLimit;
  if (*given < 1 || static_cast<std::uint64_t>(*given) > admin::kMaxListLimit) {
    throw InvalidArgument("\"limit\" must be between 1 and " +
                          std::to_string(admin::kMaxListLimit));
  }
  return static_cast<std::size_t>(*given);
}

// Reasons end up in terminals and the journal: printable text only.
std::string reason_argument(const json& arguments) {
  const auto found = arguments.find("reason");
  if (found == arguments.end() || found->is_null()) return {};
  if (!found->is_string()) throw InvalidArgument("\"reason\" must be a string");
  const auto& reason = found->get_ref<const std::string&>();
  if (reason.size() > admin::kMaxReasonSize) {
    throw InvalidArgument("\"reason\" is longer than " + std::to_string(admin::kMaxReasonSize) +
                          " bytes");
  }
  const bool has_control = std::any_of(reason.begin(), reason.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
  if (has_control) throw InvalidArgument("\"reason\" must not contain control characters");
  return reason;
}

// A history filter's "host" (history, stats): the name a host writes its
// rows as (host_name, docs/fleet.md). Bound as a parameter, never pasted
// into SQL; printable, since it comes back in answers and terminals.
std::optional<std::string> host_argument(const json& arguments) {
  const auto found = arguments.find("host");
  if (found == arguments.end() || found->is_null()) return std::nullopt;
  if (!found->is_string()) throw InvalidArgument("\"host\" must be a string");
  const auto& host = found->get_ref<const std::string&>();
  const bool printable = std::none_of(host.begin(), host.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
  if (host.empty() || host.size() > 255 || !printable) {
    throw InvalidArgument("\"host\" must be 1 to 255 printable characters");
  }
  return host;
}

// Control characters from a tally's source field become '?': they end up in
// terminals and the journal.
std::string printable_text(std::string text) {
  for (char& c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return text;
}

const char* lock_kind_name(LockKind kind) {
  switch (kind) {
    case LockKind::none:
      return "none";
    case LockKind::failures:
      return "failures";
    case LockKind::permanent:
      return "permanent";
    case LockKind::manual:
      return "manual";
    case LockKind::source:
      return "source";
  }
  return "none";
}

json time_or_null(const std::optional<TimePoint>& time) {
  return time ? json(to_iso8601(*time)) : json(nullptr);
}

// A source as an admin names it (`lock`, `unlock`, `status` --source): an
// address, a CIDR prefix, a source key as `acctlock sources` shows it
// ("2001:db8::/64", "local:alice"), or a host name.
}  // namespace

struct SourceText {
  // The source an attempt from it would have: an address taken to its
  // source key (IPv6 masked to source_prefix_v6), a prefix as its canonical
  // text, a host name or "local:USER" as they are.
  Source source;
  // An address or a prefix: what a manual block of this text covers. Its
  // canonical text (AddressPrefix::to_string) is the block's key.
  std::optional<AddressPrefix> prefix;
  bool is_prefix = false;  // given with a '/'
};

namespace {

SourceText source_text_argument(const json& arguments, unsigned prefix_v6) {
  const auto found = arguments.find("source");
  if (found == arguments.end() || !found->is_string()) {
    throw InvalidArgument("argument \"source\" (a string) is required");
  }
  const auto& text = found->get_ref<const std::string&>();
  const auto not_a_source = [&](const std::string& why) {
    return InvalidArgument("\"" + printable_text(text) + "\" is not a source" +
                           (why.empty() ? std::string(": give an address, a CIDR prefix, a host "
                                                      "name or local:USER")
                                        : ": " + why));
  };
  SourceText parsed;
  if (text == "local") {
    parsed.source.kind = Source::Kind::console;
    parsed.source.key = "local";
    return parsed;
  }
  if (text.starts_with("local:")) {
    const auto source = normalise_source("", std::string_view(text).substr(6), prefix_v6);
    if (!source || source->kind != Source::Kind::local_user) throw not_a_source("");
    parsed.source = *source;
    return parsed;
  }
  if (text.find('/') != std::string::npos) {
    std::string error;
    const auto prefix = parse_address_prefix(text, &error);
    if (!prefix) throw not_a_source(error);
    parsed.prefix = prefix;
    parsed.is_prefix = true;
    parsed.source.kind = prefix->network.is_v6 ? Source::Kind::ipv6 : Source::Kind::ipv4;
    parsed.source.key = prefix->to_string();
    parsed.source.address = prefix->network;
    return parsed;
  }
  const auto source = normalise_source(text, "", prefix_v6);
  if (!source) throw not_a_source("");
  parsed.source = *source;
  if (source->address) {
    parsed.prefix = AddressPrefix{*source->address, source->address->bit_count()};
  }
  return parsed;
}

json source_json(const SourceReport& report) {
  const UserState& state = report.state;
  std::optional<TimePoint> blocked_since;
  json reason = nullptr;
  if (report.status.kind == LockKind::manual && state.manual_lock) {
    blocked_since = state.manual_lock->since;
    if (!state.manual_lock->reason.empty()) reason = state.manual_lock->reason;
  } else if (report.status.locked() && state.failure_lock) {
    blocked_since = state.failure_lock->since;
  }
  std::optional<TimePoint> last_failure;
  if (state.failures > 0 || state.failure_lock) last_failure = state.last_failure;
  const bool manual = report.status.kind == LockKind::manual && state.manual_lock;
  return json{
      {"source", report.source},
      {"blocked", report.status.locked()},
      {"lock", lock_kind_name(report.status.kind)},
      {"manual", manual},
      {"failures", report.status.failures},
      {"level", report.status.level},
      {"blocked_since", time_or_null(blocked_since)},
      {"blocked_until", time_or_null(report.status.until)},
      {"reason", reason},
      {"blocked_by_uid", manual ? json(state.manual_lock->admin_uid) : json(nullptr)},
      {"last_failure", time_or_null(last_failure)},
  };
}

// The times of the failures a source's count holds, oldest first.
json failure_times_json(const UserState& state) {
  json times = json::array();
  if (state.failures == 0) return times;
  for (const TimePoint time : state.earlier_failures) times.push_back(to_iso8601(time));
  times.push_back(to_iso8601(state.last_failure));
  return times;
}

// One scope's lock, for `status` and `list`: the keys the top level has
// always had for the account.
json lock_json(const LockStatus& status, const UserState& state) {
  std::optional<TimePoint> locked_since;
  if (status.kind == LockKind::manual && state.manual_lock) {
    locked_since = state.manual_lock->since;
  } else if (status.locked() && state.failure_lock) {
    locked_since = state.failure_lock->since;
  }
  std::optional<TimePoint> last_failure;
  if (state.failures > 0) last_failure = state.last_failure;
  return json{
      {"locked", status.locked()},
      {"lock", lock_kind_name(status.kind)},
      {"failures", status.failures},
      {"level", status.level},
      {"locked_since", time_or_null(locked_since)},
      {"locked_until", time_or_null(status.until)},
      {"last_failure", time_or_null(last_failure)},
  };
}

// The top level describes the account's state (lockout_scope = account) or
// the familiar sources' (unfamiliar), which holds the manual lock; with
// `unfamiliar`, "unfamiliar" holds the other scope's and "locked_scopes"
// says which are locked (acctlock(8), "status").
json report_json(const UserReport& report) {
  const LockStatus& status = report.status;
  const UserState& state = report.state;
  json reason = nullptr;
  json locked_by_uid = nullptr;
  if (status.kind == LockKind::manual && state.manual_lock) {
    // A lock given without a reason has none: null, as for every other lock.
    if (!state.manual_lock->reason.empty()) reason = state.manual_lock->reason;
    locked_by_uid = state.manual_lock->admin_uid;
  }
  json out = lock_json(status, state);
  out["user"] = report.user;
  out["manual"] = status.kind == LockKind::manual;
  out["reason"] = reason;
  out["locked_by_uid"] = locked_by_uid;
  const bool scoped = report.scope == LockoutScope::unfamiliar;
  out["lockout_scope"] = scoped ? "unfamiliar" : "account";
  json scopes = json::array();
  if (!scoped) {
    if (status.locked()) scopes.push_back("account");
    out["unfamiliar"] = nullptr;
  } else {
    // A manual lock covers every scope.
    LockStatus unfamiliar = report.unfamiliar_status;
    const UserState* unfamiliar_state = &report.unfamiliar_state;
    if (status.kind == LockKind::manual) {
      unfamiliar = status;
      unfamiliar_state = &state;
    }
    if (status.locked()) scopes.push_back("familiar");
    if (unfamiliar.locked()) scopes.push_back("unfamiliar");
    out["unfamiliar"] = lock_json(unfamiliar, *unfamiliar_state);
  }
  out["locked_scopes"] = std::move(scopes);
  json familiar = json::array();
  for (const FamiliarSource& source : report.familiar) {
    familiar.push_back(
        json{{"source", source.key},
             {"last_success", to_iso8601(source.last_success)},
             {"familiar_until", to_iso8601(source.last_success + report.familiar_memory)}});
  }
  out["familiar_sources"] = std::move(familiar);
  return out;
}

std::string describe_status(const json& status) {
  const std::string user = status["user"];
  const auto& scopes = status["locked_scopes"];
  if (status["lockout_scope"] == "unfamiliar" && !scopes.empty()) {
    if (scopes.size() == 2) {
      return user + " is locked (" + status["lock"].get<std::string>() +
             ") for familiar and unfamiliar sources";
    }
    const json& lock = scopes[0] == "familiar" ? status : status["unfamiliar"];
    return user + " is locked (" + lock["lock"].get<std::string>() + ") for " +
           scopes[0].get<std::string>() + " sources only";
  }
  if (!status["locked"].get<bool>()) {
    return user + " is not locked (" + std::to_string(status["failures"].get<std::uint32_t>()) +
           " failure(s))";
  }
  return user + " is locked (" + status["lock"].get<std::string>() + ")";
}

json history_json(const HistoryEntry& entry) {
  return json{
      {"time", to_iso8601(entry.time)},
      {"user", entry.user},
      {"event", to_string(entry.event)},
      {"service", entry.service},
      {"rhost", entry.rhost},
      {"tty", entry.tty},
      {"ruser", entry.ruser},
      {"admin_uid", entry.admin_uid ? json(*entry.admin_uid) : json(nullptr)},
      {"detail", entry.detail},
      // An aggregate row (daemon/store/history_budget.h) stands for `events`
      // events from `first_time` to `time`; a plain row has 1 and null.
      {"events", entry.count},
      {"first_time", entry.first_time ? json(to_iso8601(*entry.first_time)) : json(nullptr)},
      {"peer_uid", entry.peer_uid ? json(*entry.peer_uid) : json(nullptr)},
      // The host that wrote the row (version 7): with store = postgresql
      // each row's own, with SQLite the daemon's (the file is its alone).
      {"host", entry.host},
  };
}

// What history and stats answers say of the hosts (version 7): the filter
// (null: every host), the answering daemon's host_name, and whether other
// hosts write to the same history, so that a client knows when to show a
// host column.
void add_host_keys(json& answer, const std::optional<std::string>& filter, const Store& store) {
  answer["host"] = filter ? json(*filter) : json(nullptr);
  answer["this_host"] = store.host_name();
  answer["shared_store"] = store.shared();
}

// The last 24 hours on whole-hour boundaries, oldest first; the last bucket
// is the current hour so far. Failures include the failure that locked.
constexpr std::size_t kStatsHours = 24;

// The first of the kStatsHours whole hours `stats` counts, the last being
// the one `now` is in.
TimePoint first_stats_hour(TimePoint now) {
  constexpr std::int64_t kHour = 3600;
  const std::int64_t this_hour = now.time_since_epoch().count() / kHour * kHour;
  return TimePoint(Seconds(this_hour - static_cast<std::int64_t>(kStatsHours - 1) * kHour));
}

json failures_per_hour_json(TimePoint from, const std::vector<std::uint64_t>& counts) {
  json buckets = json::array();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    buckets.push_back(
        json{{"start", to_iso8601(from + std::chrono::hours(static_cast<std::int64_t>(i)))},
             {"failures", counts[i]}});
  }
  return buckets;
}

AdminAnswer answer(Result result, std::string text, json arguments = json::object()) {
  return AdminAnswer{result, std::move(text), std::move(arguments)};
}

// Runs `read` on the reader thread and `then` with its result on the loop;
// inline without a reader. A full queue is the caller's answer, not a wait.
template <class Read, class Then>
void read_off_loop(WorkerThread* reader, const AdminCommands::Reply& reply, Read read, Then then) {
  if (reader == nullptr) return then(read());
  const bool queued = reader->run(
      std::move(read), [reply, then = std::move(then)](auto result, const std::string& error) {
        if (!result) {
          log_error("admin socket: reading the database failed: " + error);
          return reply(answer(Result::error, "failed: " + error));
        }
        try {
          then(std::move(*result));
        } catch (const std::exception& e) {
          reply(answer(Result::error, std::string("failed: ") + e.what()));
        }
      });
  if (!queued) {
    reply(answer(Result::error, "busy: too many admin requests are waiting; try again"));
  }
}

}  // namespace

json AdminAnswer::to_json() const {
  return json{{"result", static_cast<int>(result)}, {"text", text}, {"arguments", arguments}};
}

std::string AdminAnswer::to_line() const {
  if (!serialized.empty()) return serialized;
  // Answers carry user-supplied text; replace rather than throw on bad UTF-8.
  return to_json().dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
}

std::optional<gid_t> group_id(const std::string& name) {
  if (name.empty()) return std::nullopt;
  const long hint = sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buffer(hint > 0 ? static_cast<std::size_t>(hint) : 16384);
  for (;;) {
    group entry{};
    group* found = nullptr;
    const int error = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 22)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (error != 0 || found == nullptr) return std::nullopt;
    return entry.gr_gid;
  }
}

std::string to_iso8601(TimePoint time) {
  const std::time_t seconds = static_cast<std::time_t>(time.time_since_epoch().count());
  std::tm parts{};
  if (gmtime_r(&seconds, &parts) == nullptr) return std::to_string(seconds);
  char text[32];
  const std::size_t size = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return std::string(text, size);
}

AdminCommands::AdminCommands(AdminContext context) : context_(std::move(context)) {
  register_builtin_commands();
}

void AdminCommands::add(std::string name, Access access, std::vector<std::string> arguments,
                        Handler handler) {
  commands_.insert_or_assign(std::move(name),
                             Entry{access, std::move(arguments), std::move(handler)});
}

void AdminCommands::register_builtin_commands() {
  add("status", Access::own_account, {"user"},
      [this](const AdminCaller&, const json& arguments, Reply reply) { status(arguments, reply); });
  add("history", Access::own_account, {"user", "failed", "since", "limit", "host"},
      [this](const AdminCaller&, const json& arguments, Reply reply) {
        history(arguments, reply);
      });
  add("list", Access::admin, {"locked", "limit", "after"},
      [this](const AdminCaller&, const json& arguments, Reply reply) { list(arguments, reply); });
  add("stats", Access::admin, {"host"},
      [this](const AdminCaller&, const json& arguments, Reply reply) { stats(arguments, reply); });
  add("lock", Access::admin, {"user", "reason", "for"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        lock(caller, arguments, reply);
      });
  add("watch", Access::admin, {"successes"},
      [this](const AdminCaller&, const json& arguments, Reply reply) { watch(arguments, reply); });
  add("unlock", Access::admin, {"user"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        unlock(caller, arguments, false, reply);
      });
  add("sources", Access::admin, {"blocked", "limit", "after"},
      [this](const AdminCaller&, const json& arguments, Reply reply) {
        sources(arguments, reply);
      });
  add("lock_source", Access::admin, {"source", "reason", "for"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        lock_source(caller, arguments, reply);
      });
  add("source_status", Access::admin, {"source"},
      [this](const AdminCaller&, const json& arguments, Reply reply) {
        source_status(arguments, reply);
      });
  add("unlock_source", Access::admin, {"source"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        unlock_source(caller, arguments, reply);
      });
  add("reset", Access::admin, {"user"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        unlock(caller, arguments, true, reply);
      });
  add("unlock_all", Access::admin,
      [this](const AdminCaller& caller, const json&, Reply reply) { unlock_all(caller, reply); });
  // What `acctlock doctor` compares with its own version and protocols.
  add("version", Access::admin, [](const AdminCaller&, const json&, Reply reply) {
    reply(answer(Result::success, std::string("acctlockd ") + ACCTLOCK_VERSION,
                 json{{"version", ACCTLOCK_VERSION},
                      {"admin_protocol", admin::kProtocolVersion},
                      {"event_protocol", protocol::kVersion}}));
  });
  add("import_faillock", Access::admin, {"records"},
      [this](const AdminCaller& caller, const json& arguments, Reply reply) {
        import_faillock(caller, arguments, reply);
      });
}

void AdminCommands::import_faillock(const AdminCaller& caller, const json& arguments,
                                    const Reply& reply) {
  const auto records = arguments.find("records");
  if (records == arguments.end() || !records->is_array()) {
    throw InvalidArgument("argument \"records\" (an array) is required");
  }
  // Checked whole before anything is staged: a bad record changes nothing.
  struct Imported {
    std::string user;
    TimePoint when;
    EventOrigin origin;
    bool valid;
  };
  std::vector<Imported> imports;
  for (const json& record : *records) {
    if (!record.is_object()) throw InvalidArgument("each record is an object");
    for (const auto& [key, value] : record.items()) {
      static constexpr std::string_view kRecordKeys[] = {"user", "time", "source", "kind", "valid"};
      if (std::find(std::begin(kRecordKeys), std::end(kRecordKeys), key) == std::end(kRecordKeys)) {
        throw InvalidArgument("unknown key \"" + printable_text(key) +
                              "\" in a record; a record has \"user\", \"time\", \"source\", "
                              "\"kind\" and \"valid\"");
      }
    }
    Imported one;
    one.user = user_argument(record);
    const auto time = integer_argument(record, "time");
    if (!time || *time <= 0) throw InvalidArgument("\"time\" must be a positive integer");
    one.when = TimePoint(Seconds(*time));
    const auto source = record.find("source");
    const auto kind = record.find("kind");
    if (source == record.end() || !source->is_string() ||
        source->get_ref<const std::string&>().size() > 255) {
      throw InvalidArgument("\"source\" must be a string of at most 255 bytes");
    }
    const std::string text = printable_text(source->get<std::string>());
    const std::string kind_text =
        kind != record.end() && kind->is_string() ? kind->get<std::string>() : "";
    if (kind_text == "rhost") {
      one.origin.rhost = text;
    } else if (kind_text == "tty") {
      one.origin.tty = text;
    } else if (kind_text == "service") {
      one.origin.service = text;
    } else {
      throw InvalidArgument("\"kind\" must be rhost, tty or service");
    }
    one.valid = bool_argument(record, "valid");
    imports.push_back(std::move(one));
  }
  const TimePoint now = context_.now();
  std::set<std::string> users;
  for (const Imported& one : imports) {
    const bool is_root = context_.users.uid_of(one.user) == 0u;
    context_.service.import_failure(one.user, is_root, one.when, one.origin, one.valid, caller.uid,
                                    now, context_.writer.pending());
    users.insert(one.user);
  }
  std::string text = "imported " + std::to_string(imports.size()) + " record(s) of " +
                     std::to_string(users.size()) + " user(s)";
  json result{{"records", imports.size()}, {"users", users}};
  if (imports.empty()) return reply(answer(Result::success, std::move(text), std::move(result)));
  context_.writer.after_commit(
      [text = std::move(text), result = std::move(result), reply](const std::string& error) {
        if (!error.empty()) {
          return reply(answer(Result::error, "the import could not be saved: " + error));
        }
        reply(answer(Result::success, text, result));
      });
}

void AdminCommands::unlock_all(const AdminCaller& caller, const Reply& reply) {
  const TimePoint now = context_.now();
  json users = json::array();
  // Walks every tracked user in name order, a page at a time, on the loop:
  // O(tracked users). After a spray of a million names this is seconds of
  // loop time, which an operator asks for once (docs/performance.md).
  std::string after;
  for (;;) {
    const auto page = context_.service.page(after, 1000, false, now);
    if (page.empty()) break;
    for (const auto& report : page) {
      if (context_.service.unlock(report.user, caller.uid, now, context_.writer.pending())) {
        users.push_back(report.user);
      }
    }
    after = page.back().user;
  }
  std::string text = "unlocked and reset " + std::to_string(users.size()) + " user(s)";
  if (users.empty()) return reply(answer(Result::success, std::move(text), json{{"users", users}}));
  context_.writer.after_commit(
      [text = std::move(text), users = std::move(users), reply](const std::string& error) {
        if (!error.empty()) {
          return reply(answer(Result::error, "the change could not be saved: " + error));
        }
        reply(answer(Result::success, text, json{{"users", users}}));
      });
}

bool AdminCommands::is_admin(const AdminCaller& caller) const {
  if (caller.uid == 0) return true;
  const std::string group = context_.admin_socket_group();
  if (group.empty()) return false;
  // The kernel's view of the process comes first: it is what file access
  // checks use too. The group database covers a member whose session
  // predates their joining the group.
  if (const auto gid = group_id(group)) {
    if (caller.gid == *gid) return true;
    if (std::find(caller.groups.begin(), caller.groups.end(), *gid) != caller.groups.end()) {
      return true;
    }
  }
  return UserDirectory::is_in_group(caller.uid, group);
}

void AdminCommands::dispatch(const AdminCaller& caller, const json& request, Reply reply) {
  // Whatever a handler does (reply, then throw), the client gets one answer.
  auto once = [reply = std::move(reply),
               replied = std::make_shared<bool>(false)](AdminAnswer result) {
    if (*replied) return;
    *replied = true;
    reply(std::move(result));
  };

  const auto command = request.is_object() ? request.find("command") : request.end();
  if (!request.is_object() || command == request.end() || !command->is_string()) {
    return once(answer(Result::invalid, "a request is an object with a string \"command\""));
  }
  const auto& name = command->get_ref<const std::string&>();
  json arguments = json::object();
  if (const auto found = request.find("arguments"); found != request.end() && !found->is_null()) {
    if (!found->is_object())
      return once(answer(Result::invalid, "\"arguments\" must be an object"));
    arguments = *found;
  }
  const auto entry = commands_.find(name);
  if (entry == commands_.end()) {
    return once(answer(Result::unsupported, "unknown command \"" + name + "\""));
  }

  if (!is_admin(caller)) {
    bool allowed = false;
    if (entry->second.access == Access::own_account) {
      const auto user = arguments.find("user");
      allowed = user != arguments.end() && user->is_string() &&
                context_.users.uid_of(user->get<std::string>()) == caller.uid;
    }
    if (!allowed) {
      log_warning("admin socket: refused \"" + name + "\" to uid " + std::to_string(caller.uid) +
                  " (pid " + std::to_string(caller.pid) + ")");
      // Say who may, so the refused admin knows what to ask for.
      const std::string group = context_.admin_socket_group();
      std::string text = "permission denied: \"" + name + "\" is for root" +
                         (group.empty() ? std::string(" (admin_socket_group is not set)")
                                        : " and members of group " + group);
      if (entry->second.access == Access::own_account) {
        text += "; any user may run it for their own account";
      }
      ++refused_requests_;
      return once(answer(Result::permission_denied, std::move(text)));
    }
  }

  // After the access check: someone refused learns nothing more.
  const std::vector<std::string>& accepted = entry->second.arguments;
  for (const auto& [key, value] : arguments.items()) {
    if (std::find(accepted.begin(), accepted.end(), key) != accepted.end()) continue;
    std::string text = "unknown argument \"" + printable_text(key) + "\" for \"" + name + "\"";
    if (accepted.empty()) {
      text += ", which takes none";
    } else {
      text += "; it takes ";
      for (std::size_t i = 0; i < accepted.size(); ++i) {
        text += (i == 0 ? "\"" : ", \"") + accepted[i] + "\"";
      }
    }
    return once(answer(Result::invalid, std::move(text)));
  }

  try {
    entry->second.handler(caller, arguments, once);
  } catch (const InvalidArgument& e) {
    once(answer(Result::invalid, e.what()));
  } catch (const std::exception& e) {
    log_error("admin socket: \"" + name + "\" failed: " + e.what());
    once(answer(Result::error, std::string("failed: ") + e.what()));
  }
}

bool AdminCommands::user_exists(const std::string& user) {
  return context_.users.uid_of(user).has_value();
}

json AdminCommands::status_json(const std::string& user, TimePoint now) const {
  if (const auto report = context_.service.report(user, now)) return report_json(*report);
  UserReport nothing{user, LockStatus{}, UserState{}};
  nothing.scope = context_.service.familiar_rules().scope;
  return report_json(nothing);
}

namespace {

// store = postgresql: this host's standing in the fleet (docs/fleet.md);
// null for a store that is not shared.
json fleet_json(const Store& store) {
  const auto status = store.fleet_status();
  if (!status) return nullptr;
  json fleet{{"apart", status->apart}, {"outbox_events", status->waiting}};
  // An ISO 8601 time like every other time in the answers: the command
  // prints it in local time (a number printed as "-").
  if (status->apart_since) fleet["apart_since"] = to_iso8601(*status->apart_since);
  if (status->apart) fleet["problem"] = status->problem;
  // Since admin protocol 7's fleet object: the server answered and refused
  // this host (an operator must act), and a start while it was away.
  if (status->apart) fleet["refused"] = status->refused;
  if (status->started_apart) fleet["started_apart"] = true;
  return fleet;
}

}  // namespace

void AdminCommands::status(const json& arguments, const Reply& reply) {
  const std::string user = user_argument(arguments);
  const TimePoint now = context_.now();
  if (!context_.service.report(user, now) && !user_exists(user)) {
    return reply(answer(Result::no_such_user, "no such user: " + user));
  }
  json status = status_json(user, now);
  std::string text = describe_status(status);
  // Apart from the fleet, the answer is this host's view: say so.
  if (json fleet = fleet_json(context_.store); !fleet.is_null()) {
    if (fleet.value("apart", false)) {
      text += " (this host is apart from the fleet: its own view)";
    }
    status["fleet"] = std::move(fleet);
  }
  reply(answer(Result::success, std::move(text), std::move(status)));
}

// A `list` page being copied from the service, a slice a turn of the loop.
struct AdminCommands::ListPage {
  bool locked_only = false;
  std::size_t limit = 0;
  std::string after;  // where the next slice starts
  std::vector<UserReport> reports;
  Reply reply;
};

void AdminCommands::list(const json& arguments, const Reply& reply) {
  auto page = std::make_shared<ListPage>();
  page->locked_only = bool_argument(arguments, "locked");
  page->limit = page_limit(arguments);
  if (const auto found = arguments.find("after"); found != arguments.end() && !found->is_null()) {
    if (!found->is_string()) throw InvalidArgument("\"after\" must be a string");
    page->after = found->get<std::string>();
    if (!page->after.empty() && !is_valid_user_name(page->after)) {
      throw InvalidArgument("\"after\" is not a valid user name");
    }
  }
  page->reply = reply;
  copy_list_slice(std::move(page));
}

// Only the copy of the users' states is made on the loop, and in slices of
// kListSliceUsers, each its own turn, so that a check waits for one slice at
// most (a page of 1000 took the loop for 5 to 7 ms at a million users). The
// page is therefore not one instant's view: each user is copied as it is at
// its slice's turn, in name order after the one before, so a user added or
// removed meanwhile may or may not be on it, and none is on it twice
// (acctlock(8)). The JSON is built and written out on the reader.
void AdminCommands::copy_list_slice(std::shared_ptr<ListPage> page) {
  // One more than asked, to tell whether a next page exists.
  const std::size_t wanted = page->limit + 1 - page->reports.size();
  const std::size_t slice = context_.loop != nullptr ? std::min(wanted, kListSliceUsers) : wanted;
  auto reports = context_.service.page(page->after, slice, page->locked_only, context_.now());
  const bool ended = reports.size() < slice;
  for (auto& report : reports) page->reports.push_back(std::move(report));
  if (!ended && page->reports.size() <= page->limit) {
    page->after = page->reports.back().user;
    boost::asio::post(*context_.loop, [this, page = std::move(page)]() mutable {
      const Reply reply = page->reply;
      try {
        copy_list_slice(std::move(page));
      } catch (const std::exception& e) {
        reply(answer(Result::error, std::string("failed: ") + e.what()));
      }
    });
    return;
  }
  const bool more = page->reports.size() > page->limit;
  if (more) page->reports.pop_back();
  read_off_loop(
      context_.reader, page->reply,
      [reports = std::move(page->reports), more] {
        json users = json::array();
        for (const auto& report : reports) {
          users.push_back(report_json(report));
        }
        json next = more ? json(reports.back().user) : json(nullptr);
        std::string text = std::to_string(users.size()) + " user(s)";
        if (more) text += "; more after " + reports.back().user;
        AdminAnswer found = answer(Result::success, std::move(text),
                                   json{{"users", std::move(users)}, {"next", std::move(next)}});
        found.serialized = found.to_line();
        return found;
      },
      [reply = page->reply](AdminAnswer found) { reply(std::move(found)); });
}

void AdminCommands::sources(const json& arguments, const Reply& reply) {
  const bool blocked_only = bool_argument(arguments, "blocked");
  const std::size_t limit = page_limit(arguments);
  std::string after;
  if (const auto found = arguments.find("after"); found != arguments.end() && !found->is_null()) {
    if (!found->is_string()) throw InvalidArgument("\"after\" must be a string");
    after = found->get<std::string>();
  }
  auto reports = context_.service.source_page(after, limit + 1, blocked_only, context_.now());
  const bool more = reports.size() > limit;
  if (more) reports.pop_back();
  json rows = json::array();
  for (const auto& report : reports) rows.push_back(source_json(report));
  json next = more ? json(reports.back().source) : json(nullptr);
  std::string text = std::to_string(rows.size()) + " source(s)";
  if (more) text += "; more after " + reports.back().source;
  reply(answer(Result::success, std::move(text),
               json{{"sources", std::move(rows)}, {"next", std::move(next)}}));
}

json AdminCommands::source_status_json(const SourceText& given, TimePoint now) const {
  const LockoutService& service = context_.service;
  const std::string& key = given.source.key;
  const auto report = service.source_report(key, now);
  json status = source_json(report ? *report : SourceReport{key, LockStatus{}, UserState{}});
  status["tracked"] = report.has_value();
  status["console"] = given.source.kind == Source::Kind::console;
  status["trusted"] = given.source.address.has_value() && service.is_trusted_source(given.source);
  status["failure_times"] = report ? failure_times_json(report->state) : json::array();
  status["blocked_by"] = status["blocked"].get<bool>() ? json(key) : json(nullptr);
  // A manual block of a prefix around it refuses its logins as well; its
  // fields say when and why.
  const unsigned length = given.is_prefix ? given.prefix->length : 128u;
  const auto covering = service.manual_block_covering(given.source, now, length);
  if (covering && *covering != key && !status["blocked"].get<bool>()) {
    if (const auto block = service.source_report(*covering, now)) {
      const json manual = source_json(*block);
      status["blocked"] = true;
      status["lock"] = "manual";
      status["manual"] = true;
      status["blocked_by"] = *covering;
      for (const char* field : {"blocked_since", "blocked_until", "reason", "blocked_by_uid"}) {
        status[field] = manual[field];
      }
    }
  }
  return status;
}

std::string AdminCommands::describe_source(const json& status) {
  const std::string source = status["source"];
  if (status["console"].get<bool>()) return "local (the console) is never blocked";
  if (status["trusted"].get<bool>() && !status["blocked"].get<bool>()) {
    return source + " is trusted (trusted_sources): never counted, never blocked";
  }
  if (!status["blocked"].get<bool>()) {
    return source + " is not blocked (" +
           std::to_string(status["failures"].get<std::uint32_t>()) + " failure(s))";
  }
  const std::string by = status["blocked_by"];
  std::string text = source + " is blocked";
  if (by != source) text += " by the manual block of " + by;
  else text += " (" + status["lock"].get<std::string>() + ")";
  if (status["blocked_until"].is_string()) {
    text += " until " + status["blocked_until"].get<std::string>();
  }
  if (status["reason"].is_string()) text += ": " + status["reason"].get<std::string>();
  return text;
}

void AdminCommands::source_status(const json& arguments, const Reply& reply) {
  const SourceText given =
      source_text_argument(arguments, context_.service.source_rules().prefix_v6);
  json status = source_status_json(given, context_.now());
  status["input"] = arguments["source"];
  std::string text = describe_source(status);
  reply(answer(Result::success, std::move(text), std::move(status)));
}

void AdminCommands::lock_source(const AdminCaller& caller, const json& arguments,
                                const Reply& reply) {
  LockoutService& service = context_.service;
  const SourceText given = source_text_argument(arguments, service.source_rules().prefix_v6);
  std::string reason = reason_argument(arguments);
  std::optional<Seconds> duration;
  if (const auto seconds = integer_argument(arguments, "for")) {
    if (*seconds < 1 || *seconds > admin::kMaxLockSeconds) {
      throw InvalidArgument("\"for\" must be between 1 and " +
                            std::to_string(admin::kMaxLockSeconds) + " seconds");
    }
    duration = Seconds(*seconds);
  }
  if (given.source.kind == Source::Kind::console) {
    throw InvalidArgument(
        "\"local\" is the console, which is never blocked: it is the way in when the network "
        "or the daemon fails, and its failures count for their accounts (lock an account "
        "instead; local:USER blocks one user's su and sudo)");
  }
  // What is blocked: exactly the address or prefix given (an IPv6 address
  // is one address; give ADDR/64 for its whole network), or a host name's
  // or local user's key.
  const std::string key = given.prefix ? given.prefix->to_string() : given.source.key;
  if (given.prefix) {
    if (const AddressPrefix* trusted = service.trusted_source_overlap(*given.prefix)) {
      throw InvalidArgument(key + " overlaps " + trusted->to_string() +
                            " in trusted_sources, which is never blocked; take it out of "
                            "trusted_sources and reload acctlockd first, or block a prefix "
                            "outside it");
    }
  }
  const std::size_t most = std::min(kMaxManualSourceBlocks, service.max_tracked_sources());
  if (!service.has_manual_block(key) && service.manual_source_blocks() >= most) {
    return reply(answer(Result::error,
                        "nothing blocked: " + std::to_string(service.manual_source_blocks()) +
                            " manual source blocks are in force, the most acctlockd keeps (" +
                            std::to_string(most) +
                            "); lift some (acctlock sources --blocked) or block a wider prefix"));
  }
  const TimePoint now = context_.now();
  service.lock_source(key, std::move(reason), caller.uid, now, context_.writer.pending(), duration);
  SourceText blocked = given;
  blocked.source.key = key;
  blocked.is_prefix = given.prefix.has_value();
  context_.writer.after_commit([this, key, blocked, duration, reply](const std::string& error) {
    if (!error.empty()) {
      return reply(answer(Result::error, "the change could not be saved: " + error));
    }
    reply(answer(Result::success,
                 "blocked " + key + (duration ? " for " + format_duration(*duration) : ""),
                 source_status_json(blocked, context_.now())));
  });
}

void AdminCommands::unlock_source(const AdminCaller& caller, const json& arguments,
                                  const Reply& reply) {
  LockoutService& service = context_.service;
  const SourceText given = source_text_argument(arguments, service.source_rules().prefix_v6);
  if (given.source.kind == Source::Kind::console) {
    return reply(answer(Result::success, "local (the console) is never blocked",
                        source_status_json(given, context_.now())));
  }
  const TimePoint now = context_.now();
  // What `lock --source TEXT` blocked (TEXT's own address or prefix), and
  // the source an attempt from TEXT counts for (an IPv6 address's /64).
  std::vector<std::string> keys;
  if (given.prefix && service.has_manual_block(given.prefix->to_string())) {
    keys.push_back(given.prefix->to_string());
  }
  if (std::find(keys.begin(), keys.end(), given.source.key) == keys.end()) {
    keys.push_back(given.source.key);
  }
  std::vector<std::string> lifted;
  for (const std::string& key : keys) {
    if (service.unlock_source(key, caller.uid, now, context_.writer.pending())) {
      lifted.push_back(key);
    }
  }
  const auto finish = [this, given, lifted, reply] {
    json status = source_status_json(given, context_.now());
    std::string text;
    if (lifted.empty()) {
      text = given.source.key + " has no failures and no block";
    } else {
      text = "unblocked";
      for (const std::string& key : lifted) text += " " + key;
    }
    // A prefix block around it still refuses its logins: say which, and how.
    if (status["blocked"].get<bool>() && status["blocked_by"].is_string()) {
      const std::string by = status["blocked_by"];
      text += "; still blocked by the manual block of " + by + " (acctlock unlock --source " +
              by + ")";
    }
    reply(answer(Result::success, std::move(text), std::move(status)));
  };
  // Nothing tracked: the goal already holds, as for a user.
  if (lifted.empty()) return finish();
  context_.writer.after_commit([finish, reply](const std::string& error) {
    if (!error.empty()) {
      return reply(answer(Result::error, "the change could not be saved: " + error));
    }
    finish();
  });
}

void AdminCommands::lock(const AdminCaller& caller, const json& arguments, const Reply& reply) {
  const std::string user = user_argument(arguments);
  std::string reason = reason_argument(arguments);
  std::optional<Seconds> duration;
  if (const auto seconds = integer_argument(arguments, "for")) {
    if (*seconds < 1 || *seconds > admin::kMaxLockSeconds) {
      throw InvalidArgument("\"for\" must be between 1 and " +
                            std::to_string(admin::kMaxLockSeconds) + " seconds");
    }
    duration = Seconds(*seconds);
  }
  const TimePoint now = context_.now();
  // A typo must not look like a lock that took effect.
  if (!context_.service.report(user, now) && !user_exists(user)) {
    return reply(answer(Result::no_such_user, "no such user: " + user));
  }
  context_.service.lock(user, std::move(reason), caller.uid, now, context_.writer.pending(),
                        duration);
  reply_after_commit(
      user, "locked " + user + (duration ? " for " + format_duration(*duration) : ""), reply);
}

void AdminCommands::unlock(const AdminCaller& caller, const json& arguments, bool reset_only,
                           const Reply& reply) {
  const std::string user = user_argument(arguments);
  const TimePoint now = context_.now();
  if (context_.service.unlock(user, caller.uid, now, context_.writer.pending())) {
    return reply_after_commit(user, (reset_only ? "reset " : "unlocked ") + user, reply);
  }
  // Nothing recorded: the goal (no lock, no failures) already holds, so a
  // script that unlocks twice succeeds, unless the name is not a user at all.
  if (!user_exists(user)) return reply(answer(Result::no_such_user, "no such user: " + user));
  reply(answer(Result::success, user + " has no failures and no lock", status_json(user, now)));
}

void AdminCommands::reply_after_commit(const std::string& user, std::string text,
                                       const Reply& reply) {
  context_.writer.after_commit(
      [this, user, text = std::move(text), reply](const std::string& error) {
        if (!error.empty()) {
          return reply(answer(Result::error, "the change could not be saved: " + error));
        }
        reply(answer(Result::success, text, status_json(user, context_.now())));
      });
}

void AdminCommands::history(const json& arguments, const Reply& reply) {
  HistoryQuery query;
  // Without "user", every user's history (admins only: dispatch lets a
  // non-admin through only for their own user name).
  const bool all_users = arguments.find("user") == arguments.end();
  const std::string user = all_users ? std::string() : user_argument(arguments);
  if (!all_users) query.user = user;
  query.failures_only = bool_argument(arguments, "failed");
  if (const auto since = integer_argument(arguments, "since"))
    query.since = TimePoint(Seconds(*since));
  if (const auto limit = integer_argument(arguments, "limit")) {
    if (*limit < 1 || static_cast<std::uint64_t>(*limit) > admin::kMaxHistoryLimit) {
      throw InvalidArgument("\"limit\" must be between 1 and " +
                            std::to_string(admin::kMaxHistoryLimit));
    }
    query.limit = static_cast<std::size_t>(*limit);
  } else {
    query.limit = admin::kDefaultHistoryLimit;
  }
  query.host = host_argument(arguments);

  Store& store = context_.store;
  read_off_loop(
      context_.reader, reply, [&store, query] { return store.history(query); },
      [this, all_users, user, host = query.host, reply](std::vector<HistoryEntry> rows) {
        if (!all_users && rows.empty() && !context_.service.report(user, context_.now()) &&
            !user_exists(user)) {
          return reply(answer(Result::no_such_user, "no such user: " + user));
        }
        json entries = json::array();
        for (const auto& row : rows) entries.push_back(history_json(row));
        std::string text = std::to_string(entries.size()) + " event(s)";
        json found{{"user", all_users ? json(nullptr) : json(user)},
                   {"entries", std::move(entries)}};
        add_host_keys(found, host, context_.store);
        reply(answer(Result::success, std::move(text), std::move(found)));
      });
}

void AdminCommands::stats(const json& arguments, const Reply& reply) {
  // "host" (version 7) narrows the history figures to that host's rows; the
  // lock figures are the store's state, the same on every host sharing it.
  const std::optional<std::string> host = host_argument(arguments);
  const TimePoint now = context_.now();
  const TimePoint hour_ago = now - std::chrono::hours(1);
  const TimePoint day_ago = now - std::chrono::hours(24);

  // From the index of locked users: its size, and the first names in it.
  // A lock that ran out leaves the index when the expiry timer announces it,
  // within a second.
  const std::size_t locked_now = context_.service.locked_users();
  json fleet = fleet_json(context_.store);
  // Sources, from the blocked index and the manual keys (version 6).
  json source_counts{
      {"blocked_sources", context_.service.blocked_sources()},
      {"manual_source_blocks", context_.service.manual_source_blocks()},
      {"tracked_sources", context_.service.tracked_sources()},
  };
  json locked_users = json::array();
  for (const auto& user : context_.service.locked_names(admin::kMaxStatsLockedUsers)) {
    locked_users.push_back(user);
  }

  struct Counts {
    std::uint64_t failures_last_hour = 0;
    std::uint64_t failures_last_day = 0;
    std::uint64_t lockouts_last_hour = 0;
    std::uint64_t lockouts_last_day = 0;
    std::vector<std::pair<std::string, std::uint64_t>> top_users;
    SourceRanking top_sources;
    json failures_per_hour;
  };
  Store& store = context_.store;
  // Sources keyed as the lockout keys them now (an IPv6 /64 is one source),
  // so that the figures match `acctlock sources`.
  const unsigned prefix_v6 = context_.service.source_rules().prefix_v6;
  const auto count = [&store, now, hour_ago, day_ago, host, prefix_v6] {
    // The failure that locks an account is recorded as `locked`, and is a
    // failure all the same.
    const TimePoint first_hour = first_stats_hour(now);
    const Store::FailureCounts failures =
        store.count_failures(hour_ago, day_ago, first_hour, kStatsHours, host);
    Counts counts;
    counts.failures_last_hour = failures.failures_last_hour;
    counts.failures_last_day = failures.failures_last_day;
    counts.lockouts_last_hour = failures.lockouts_last_hour;
    counts.lockouts_last_day = failures.lockouts_last_day;
    counts.top_users = store.top_failures(day_ago, false, 10, host);
    counts.top_sources = rank_failure_sources(
        [&store, day_ago, &host](const FailureOriginVisitor& visit) {
          store.for_each_failure_origin(day_ago, visit, host);
        },
        prefix_v6, 10);
    counts.failures_per_hour = failures_per_hour_json(first_hour, failures.per_hour);
    return counts;
  };
  read_off_loop(
      context_.reader, reply, count,
      [reply, locked_now, locked_users = std::move(locked_users),
       source_counts = std::move(source_counts), fleet = std::move(fleet), host,
       &store](Counts counts) {
        json top_users = json::array();
        for (const auto& [name, failures] : counts.top_users) {
          top_users.push_back(json{{"user", name}, {"failures", failures}});
        }
        // "rhost" holds the key too, for the commands and pages that read
        // it before "source" was there.
        json top_sources = json::array();
        for (const auto& [key, failures] : counts.top_sources.top) {
          top_sources.push_back(json{{"source", key}, {"rhost", key}, {"failures", failures}});
        }
        json stats{
            {"locked_now", locked_now},
            {"locked_users", locked_users},
            {"failures_last_hour", counts.failures_last_hour},
            {"failures_last_day", counts.failures_last_day},
            {"lockouts_last_hour", counts.lockouts_last_hour},
            {"lockouts_last_day", counts.lockouts_last_day},
            {"top_users", std::move(top_users)},
            {"top_sources", std::move(top_sources)},
            {"top_sources_complete", counts.top_sources.complete},
            {"failures_per_hour", std::move(counts.failures_per_hour)},
        };
        stats.update(source_counts);
        if (!fleet.is_null()) stats["fleet"] = fleet;
        add_host_keys(stats, host, store);
        std::string text = std::to_string(locked_now) + " user(s) locked";
        reply(answer(Result::success, std::move(text), std::move(stats)));
      });
}

void AdminCommands::watch(const json& arguments, const Reply& reply) {
  const bool successes = bool_argument(arguments, "successes");
  if (context_.watchers == nullptr) {
    return reply(answer(Result::unsupported, "this daemon does not stream events"));
  }
  if (context_.watchers->size() >= kMaxWatchers) {
    return reply(answer(Result::error, "too many watchers (" + std::to_string(kMaxWatchers) +
                                           "); try again when one has closed"));
  }
  AdminAnswer watching = answer(Result::success, "watching lock events",
                                json{{"max_queued_events", kMaxQueuedEvents}});
  watching.watch = AdminAnswer::Watch{successes};
  reply(std::move(watching));
}

}  // namespace acctlock
