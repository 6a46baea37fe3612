// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/metrics/daemon_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace acctlock {
namespace {

constexpr std::size_t kMaxServiceNameLength = 32;
const char* const kOtherService = "other";
const char* const kNoService = "none";

// Prometheus floats: integers print without a fraction, "+Inf" for infinity.
std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels,
            std::uint64_t value) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ';
  out += number(value);
  out += '\n';
}

// Only values this file makes are labels, and the service names pass
// service_label(); escaping is still done so the format can never break.
std::string label(const char* name, const std::string& value) {
  std::string escaped;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      escaped += '\\';
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return std::string(name) + "=\"" + escaped + '"';
}

bool is_plain_service_name(const std::string& service) {
  if (service.empty() || service.size() > kMaxServiceNameLength) return false;
  return std::all_of(service.begin(), service.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), buckets_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bound = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  ++buckets_[static_cast<std::size_t>(bound - upper_bounds_.begin())];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, std::string& out) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += buckets_[i];
    sample(out, name + "_bucket", label("le", number(upper_bounds_[i])), cumulative);
  }
  sample(out, name + "_bucket", label("le", "+Inf"), count_);
  sample(out, name + "_sum", "", sum_);
  sample(out, name + "_count", "", count_);
}

DaemonMetrics::DaemonMetrics(std::function<MetricsSnapshot()> snapshot,
                             std::chrono::system_clock::time_point started)
    : snapshot_(std::move(snapshot)),
      start_time_seconds_(std::chrono::duration<double>(started.time_since_epoch()).count()),
      // From a cached page write to an fsync on a slow disk.
      commit_seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
      batch_events_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}) {}

std::string DaemonMetrics::service_label(const std::string& service) {
  if (service.empty()) return kNoService;
  if (!is_plain_service_name(service)) return kOtherService;
  if (services_.count(service) != 0) return service;
  // "other" and "none" are made here; they do not take a place.
  std::size_t named = services_.size();
  named -= services_.count(kOtherService) + services_.count(kNoService);
  if (named >= kMaxServices) return kOtherService;
  return service;
}

void DaemonMetrics::record(const LockEvent& event) {
  const HistoryEntry& entry = event.entry;
  switch (entry.event) {
    case HistoryEvent::success:
      ++services_[service_label(entry.service)].successes;
      break;
    case HistoryEvent::failure:
      ++services_[service_label(entry.service)].failures;
      break;
    case HistoryEvent::locked:
      // The failure that locks is a failure too.
      ++services_[service_label(entry.service)].failures;
      ++lockouts_[event.locked_until ? 0 : 1];
      break;
    case HistoryEvent::manual_lock:
      ++lockouts_[2];
      break;
    case HistoryEvent::unlocked:
      ++unlocked_by_admin_;
      break;
    case HistoryEvent::expired:
      ++expired_;
      break;
    case HistoryEvent::password_changed:
      ++lifted_by_password_change_;
      break;
    case HistoryEvent::spray_suspected:
      ++spray_suspected_;
      break;
    case HistoryEvent::reset:
    case HistoryEvent::source_blocked:  // its failure has an event of its own
    case HistoryEvent::source_expired:
    case HistoryEvent::source_unlocked:
      break;
  }
}

void DaemonMetrics::record_commit(std::chrono::duration<double> duration, std::size_t events,
                                  bool failed) {
  if (failed) {
    ++commit_errors_;
    return;
  }
  commit_seconds_.observe(duration.count());
  batch_events_.observe(static_cast<double>(events));
}

std::string DaemonMetrics::render() const {
  const MetricsSnapshot now = snapshot_();
  std::string out;
  out.reserve(8192);

  header(out, "acctlock_build_info", "gauge",
         "Always 1; the version label says which acctlockd is running.");
  sample(out, "acctlock_build_info", label("version", ACCTLOCK_VERSION), std::uint64_t{1});

  // An info metric, as Prometheus recommends for a constant property of a
  // target: a fleet's queries join it on the scrape's `instance` label
  // (`* on(instance) group_left(host) acctlock_host_info`) to name the host
  // as acctlock's history does, without adding a label to every series.
  if (!now.host_name.empty()) {
    header(out, "acctlock_host_info", "gauge",
           "Always 1; host is the name this acctlockd writes its history rows as (host_name), "
           "store is sqlite or postgresql (shared by a fleet).");
    sample(out, "acctlock_host_info",
           label("host", now.host_name) + "," +
               label("store", now.shared_store ? "postgresql" : "sqlite"),
           std::uint64_t{1});
  }

  header(out, "acctlock_start_time_seconds", "gauge",
         "When this acctlockd process started, in seconds since the Unix epoch.");
  sample(out, "acctlock_start_time_seconds", "", start_time_seconds_);

  header(out, "acctlock_auth_failures_total", "counter",
         "Failed authentications reported by pam_acctlock and committed, by PAM service "
         "(including the failure that locked an account and failures while locked).");
  for (const auto& [service, counts] : services_) {
    sample(out, "acctlock_auth_failures_total", label("service", service), counts.failures);
  }
  header(out, "acctlock_auth_successes_total", "counter",
         "Successful authentications reported by pam_acctlock, by PAM service.");
  for (const auto& [service, counts] : services_) {
    sample(out, "acctlock_auth_successes_total", label("service", service), counts.successes);
  }

  static const char* const kKinds[] = {"failures", "permanent", "manual"};
  header(out, "acctlock_lockouts_total", "counter",
         "Accounts locked, by kind: failures (a timed lock after failed logins), permanent "
         "(a failure lock only an admin lifts), manual (an admin's lock).");
  for (std::size_t i = 0; i < lockouts_.size(); ++i) {
    sample(out, "acctlock_lockouts_total", label("kind", kKinds[i]), lockouts_[i]);
  }

  header(out, "acctlock_lock_ends_total", "counter",
         "Locks lifted, by how: admin (acctlock unlock or reset), expired (a timed lock ran "
         "out), password_changed (a password change lifted a failure lock).");
  sample(out, "acctlock_lock_ends_total", label("how", "admin"), unlocked_by_admin_);
  sample(out, "acctlock_lock_ends_total", label("how", "expired"), expired_);
  sample(out, "acctlock_lock_ends_total", label("how", "password_changed"),
         lifted_by_password_change_);

  header(out, "acctlock_locked_accounts", "gauge", "Accounts locked now, by kind.");
  sample(out, "acctlock_locked_accounts", label("kind", "failures"), now.locked_failures);
  sample(out, "acctlock_locked_accounts", label("kind", "permanent"), now.locked_permanent);
  sample(out, "acctlock_locked_accounts", label("kind", "manual"), now.locked_manual);
  header(out, "acctlock_unfamiliar_scope_locked_accounts", "gauge",
         "lockout_scope = unfamiliar: accounts locked by failures for unfamiliar sources "
         "(acctlock_locked_accounts counts the familiar sources' locks).");
  sample(out, "acctlock_unfamiliar_scope_locked_accounts", "", now.locked_unfamiliar_scope);

  header(out, "acctlock_blocked_sources", "gauge",
         "Sources (addresses, IPv6 prefixes, host names) blocked now, by failures or by an "
         "administrator.");
  sample(out, "acctlock_blocked_sources", "", now.blocked_sources);
  header(out, "acctlock_tracked_sources", "gauge",
         "Sources with state kept (counted failures, blocks), at most max_tracked_sources.");
  sample(out, "acctlock_tracked_sources", "", now.tracked_sources);

  if (now.fleet) {
    header(out, "acctlock_fleet_apart", "gauge",
           "1 while this host cannot reach the fleet's PostgreSQL and keeps its events in its "
           "outbox (degraded mode), else 0.");
    sample(out, "acctlock_fleet_apart", "", std::uint64_t{now.fleet->apart ? 1u : 0u});
    header(out, "acctlock_fleet_outbox_events", "gauge",
           "Events this host kept while apart from the fleet, not yet replayed.");
    sample(out, "acctlock_fleet_outbox_events", "", now.fleet->waiting);
  }
  header(out, "acctlock_evicted_sources_total", "counter",
         "Sources whose state was dropped to keep the source table within "
         "max_tracked_sources (the least useful first, blocked ones last).");
  sample(out, "acctlock_evicted_sources_total", "", now.evicted_sources);

  header(out, "acctlock_spray_suspected_total", "counter",
         "Password sprays suspected: failures for spray_users distinct users from spray_sources "
         "distinct sources within spray_window (a spray_suspected journal event each; nothing "
         "is blocked for it).");
  sample(out, "acctlock_spray_suspected_total", "", spray_suspected_);

  header(out, "acctlock_history_aggregated_events_total", "counter",
         "History events folded into an aggregate row instead of a row of their own, because "
         "their reporter reached its cap on history rows (history_max_rows_per_uid, "
         "history_max_rows or the unprivileged peers' share); each still counted for the "
         "lockout.");
  sample(out, "acctlock_history_aggregated_events_total", "", now.history_aggregated_events);

  header(out, "acctlock_tracked_users", "gauge",
         "Users with failures or a lock that acctlockd keeps in memory and in the database.");
  sample(out, "acctlock_tracked_users", "", now.tracked_users);

  header(out, "acctlock_refused_peers_total", "counter",
         "Requests refused by the peer's credentials, by socket: event (a user speaking for "
         "another user), admin (a non-admin asking for an admin command).");
  sample(out, "acctlock_refused_peers_total", label("socket", "event"), now.refused_event_peers);
  sample(out, "acctlock_refused_peers_total", label("socket", "admin"), now.refused_admin_peers);

  header(out, "acctlock_store_errors_total", "counter",
         "Database operations that failed, by operation: commit (events not saved, their "
         "clients told so), prune (history past retention not removed), file (the database file "
         "deleted or replaced under the daemon; commits fail from then on).");
  sample(out, "acctlock_store_errors_total", label("operation", "commit"), commit_errors_);
  sample(out, "acctlock_store_errors_total", label("operation", "prune"), prune_errors_);
  sample(out, "acctlock_store_errors_total", label("operation", "file"), file_problems_);

  header(out, "acctlock_commit_duration_seconds", "histogram",
         "Time of one group commit to the database (the transaction and its fsync).");
  commit_seconds_.render("acctlock_commit_duration_seconds", out);

  header(out, "acctlock_commit_batch_events", "histogram",
         "History events saved by one group commit.");
  batch_events_.render("acctlock_commit_batch_events", out);

  header(out, "acctlock_database_size_bytes", "gauge",
         "Size of the database file and its write-ahead log.");
  sample(out, "acctlock_database_size_bytes", "", now.database_bytes);

  header(out, "acctlock_watchers", "gauge",
         "Admin connections streaming lock events (acctlock watch).");
  sample(out, "acctlock_watchers", "", now.watchers);
  return out;
}

}  // namespace acctlock
