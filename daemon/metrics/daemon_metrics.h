// SPDX-License-Identifier: BSD-3-Clause
// What acctlockd tells a monitoring system: counters of what happened since
// the daemon started, gauges of its state, and histograms of its commits,
// rendered in Prometheus's text exposition format (version 0.0.4).
//
// Label values are bounded on purpose. User names and addresses are never
// label values: every name tried by a password sprayer and every address of
// a botnet would become a series of its own (unbounded cardinality, a
// Prometheus brought down by the attack it is meant to show), and the time
// series database would keep who failed to log in from where, readable by
// anyone with access to dashboards, long after acctlock's own history
// retention has removed it. `acctlock stats` and the history hold per-user
// and per-address figures for those allowed to see them. The PAM service
// name, reported by each client, is a label, but only names made of
// [A-Za-z0-9._-] up to 32 characters, and only the first kMaxServices
// distinct ones: everything past that counts under service="other", so a
// local user inventing service names cannot grow the series.
//
// Used on the event loop thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "daemon/journal/event_log.h"

namespace acctlock {

// A Prometheus histogram with fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines for `name`.
  void render(const std::string& name, std::string& out) const;
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<std::uint64_t> buckets_;  // not cumulative; summed when rendered
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Values read when a scrape renders the page: state that other parts own.
struct MetricsSnapshot {
  std::uint64_t locked_failures = 0;   // failure locks that may expire
  std::uint64_t locked_permanent = 0;  // failure locks only an admin lifts
  std::uint64_t locked_manual = 0;     // locks an admin set
  // lockout_scope = unfamiliar: failure locks for unfamiliar sources.
  std::uint64_t locked_unfamiliar_scope = 0;
  std::uint64_t tracked_users = 0;
  std::uint64_t blocked_sources = 0;
  std::uint64_t tracked_sources = 0;
  std::uint64_t refused_event_peers = 0;
  std::uint64_t refused_admin_peers = 0;
  std::uint64_t database_bytes = 0;  // the database file and its WAL
  std::uint64_t watchers = 0;
  // store = postgresql: whether this host is apart from the fleet, and the
  // events its outbox holds (docs/fleet.md).
  std::optional<FleetStatus> fleet;
  // acctlock_host_info (issue 15): the name this daemon writes its history
  // rows as (host_name), and whether its store is shared by a fleet
  // (PostgreSQL). Empty host: no info sample.
  std::string host_name;
  bool shared_store = false;
  // Counters that other parts keep (since start).
  std::uint64_t evicted_sources = 0;            // LockoutService::evicted_sources
  std::uint64_t history_aggregated_events = 0;  // HistoryBudget::aggregated_events
};

class DaemonMetrics : public EventLog {
 public:
  static constexpr std::size_t kMaxServices = 32;

  explicit DaemonMetrics(
      std::function<MetricsSnapshot()> snapshot,
      std::chrono::system_clock::time_point started = std::chrono::system_clock::now());

  // Counts one committed event (the daemon hands it every event it records).
  void record(const LockEvent& event) override;

  // One commit of the batch writer: how long the transaction took, how many
  // history events it held, and whether it failed.
  void record_commit(std::chrono::duration<double> duration, std::size_t events, bool failed);
  void record_prune_error() { ++prune_errors_; }
  void record_file_problem() { ++file_problems_; }

  // The whole page.
  std::string render() const;

  // The label value for a PAM service name (see the header comment).
  std::string service_label(const std::string& service);

 private:
  struct PerService {
    std::uint64_t failures = 0;
    std::uint64_t successes = 0;
  };

  std::function<MetricsSnapshot()> snapshot_;
  double start_time_seconds_;
  std::map<std::string, PerService> services_;
  // Indexed by the lock kind: failures, permanent, manual.
  std::array<std::uint64_t, 3> lockouts_{};
  // How locks ended: an admin, the lock running out, a password change.
  std::uint64_t unlocked_by_admin_ = 0;
  std::uint64_t expired_ = 0;
  std::uint64_t lifted_by_password_change_ = 0;
  std::uint64_t spray_suspected_ = 0;
  std::uint64_t commit_errors_ = 0;
  std::uint64_t prune_errors_ = 0;
  std::uint64_t file_problems_ = 0;
  Histogram commit_seconds_;
  Histogram batch_events_;
};

}  // namespace acctlock
