// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <set>

#include "daemon/admin/admin_server.h"
#include "daemon/admin/event_watchers.h"
#include "daemon/events/batch_writer.h"
#include "daemon/events/event_server.h"
#include "daemon/journal/event_log.h"
#include "daemon/journal/journal_event_log.h"
#include "daemon/lockout_service.h"
#include "daemon/log.h"
#include "daemon/metrics/daemon_metrics.h"
#include "daemon/metrics/metrics_server.h"
#include "daemon/sockets/peer_credentials.h"
#include "daemon/sockets/socket_activation.h"
#include "daemon/sockets/unix_socket.h"
#include "daemon/fleet/outbox_replay.h"
#include "daemon/store/open_store.h"
#include "daemon/store/postgresql/postgresql_store.h"
#include "daemon/store/sqlite/sqlite_store.h"
#include "daemon/worker_thread.h"

namespace acctlock {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Wall-clock locks are re-checked at least this often, so a clock jump is
// noticed within this bound even when no expiry is near.
HistoryLimits history_limits(const Options& options);

// The rules of acctlock.conf, given to a service: the live one, and the one
// that replays a fleet host's outbox (daemon/fleet/outbox_replay.h).
void apply_options(LockoutService& service, const Options& options) {
  service.set_rules(options.rules);
  service.set_service_rules(options.service_rules);
  service.set_groups(options.admin_group, options.exempt_group);
  service.set_source_rules(options.source_rules, options.max_tracked_sources);
  service.set_history_limits(history_limits(options));
  service.set_spray_rules(options.spray);
  service.set_familiar_rules(options.familiar_sources);
}

HistoryLimits history_limits(const Options& options) {
  return HistoryLimits{options.history_max_rows, options.history_root_reserved_rows,
                       options.history_max_rows_per_uid};
}

constexpr auto kExpiryRecheck = std::chrono::seconds(60);
constexpr auto kRetentionInterval = std::chrono::hours(1);

// History past retention goes in slices of this many rows, one transaction
// each, with a pause between them in which the waiting commits go first.
constexpr std::size_t kPruneSlice = 5000;
constexpr auto kPrunePause = std::chrono::milliseconds(20);

// The idle sweep looks at this many users per turn of the loop (well under a
// millisecond), and a pass over every user starts this often: a quarter of
// fail_interval, between 1 s and 60 s.
constexpr std::size_t kSweepSlice = 1000;
constexpr auto kMinSweepInterval = std::chrono::seconds(1);
constexpr auto kMaxSweepInterval = std::chrono::seconds(60);
// A pass that removed at least this many users hands the freed memory back
// to the system: after a spray of a million names, that is 130 MB.
constexpr std::size_t kTrimAfterRemoved = 10000;

// How often the database file is compared with the one opened: a file
// deleted or replaced under the daemon is reported within this bound even
// when no commit runs into it first.
constexpr auto kFileCheckInterval = std::chrono::seconds(2);
// How often a fleet host looks whether it is apart, or may catch up; and how
// many batches of its outbox one run on the maintenance thread replays, so
// that a prune waiting for the thread is not held up long.
constexpr auto kFleetCheckInterval = std::chrono::seconds(1);
constexpr std::size_t kCatchUpBatchesPerRun = 20;

// Admin reads waiting for the reader thread; more get "busy".
constexpr std::size_t kMaxQueuedReads = 64;

class Daemon {
 public:
  explicit Daemon(DaemonConfig config)
      : config_(std::move(config)),
        signals_(io_, SIGTERM, SIGINT, SIGHUP),
        expiry_timer_(io_),
        retention_timer_(io_),
        sweep_timer_(io_),
        file_check_timer_(io_),
        watchdog_timer_(io_),
        fleet_timer_(io_) {}

  int run() {
    try {
      store_ = open_store(config_.options);
      for (const std::string& warning : store_->open_warnings()) log_warning(warning);
      reader_ = std::make_unique<WorkerThread>(io_, kMaxQueuedReads);
      maintenance_ = std::make_unique<WorkerThread>(io_, 1);
      service_ = std::make_unique<LockoutService>(config_.options.rules, *store_);
      apply_options(*service_, config_.options);
      service_->history().on_capped([](std::uint32_t uid, const std::string& why) {
        log_warning("history: " +
                    (uid == 0 ? std::string("root's PAM stacks and the daemon's own events")
                              : "events reported by uid " + std::to_string(uid)) +
                    " are now aggregated, a row per user, kind and origin, instead of a row "
                    "each (" +
                    why + "); they still count for the lockout");
      });
      service_->on_group_check([this](const std::string& user, const std::string& group) {
        const auto uid = users_.uid_of(user);
        return uid && UserDirectory::is_in_group(*uid, group);
      });
      if (store_->shared()) watch_the_fleet();
      service_->load_from_store();
      report_start_apart();
      service_->on_new_expiry([this](TimePoint expiry) {
        if (!expiry_due_ || expiry < *expiry_due_) schedule_expiry();
      });
    } catch (const std::exception& e) {
      log_error(std::string("cannot open the database: ") + e.what());
      return 1;
    }
    const bool to_journal =
        config_.log_target == LogTarget::journal ||
        (config_.log_target == LogTarget::automatic && stderr_is_journal_stream());
    if (to_journal) {
      event_log_ = std::make_unique<JournalEventLog>();
    } else {
      event_log_ = std::make_unique<StderrEventLog>();
    }
    metrics_ = std::make_unique<DaemonMetrics>([this] { return metrics_snapshot(); });
    // Each committed event goes to the journal (or stderr) from the writer
    // thread, then to the counters and the watchers on the loop.
    loop_event_fan_out_.add(*metrics_);
    loop_event_fan_out_.add(watchers_);
    writer_ = std::make_unique<BatchWriter>(io_, *store_, *event_log_, [this] {
      // BatchWriter logged the failure, saying that this follows.
      try {
        service_->load_from_store();
      } catch (const std::exception& e) {
        log_error(std::string("cannot reload state: ") + e.what());
      }
    });

    stamp_source_.store(writer_.get());
    writer_->on_commit([this](std::chrono::duration<double> took,
                              const std::vector<LockEvent>& events, bool failed) {
      metrics_->record_commit(took, events.size(), failed);
      read_deferred_fleet_rows();
      if (failed) return;
      for (const auto& event : events) loop_event_fan_out_.record(event);
    });

    try {
      inherited_ =
          take_inherited_sockets(config_.options.event_socket, config_.options.admin_socket);
    } catch (const std::exception& e) {
      log_error(e.what());
      return 1;
    }
    if (!open_event_socket() || !open_admin_socket() || !open_metrics_socket()) {
      for (const auto& path : created_sockets_) unlink(path.c_str());
      return 1;
    }
    wait_for_signal();
    schedule_expiry();
    // Pruning and the sweep start from the loop, hence after "ready".
    asio::post(io_, [this] { prune_history(); });
    schedule_sweep();
    schedule_file_check();
    schedule_fleet_check();
    start_watchdog();

    log_notice(
        "acctlockd " ACCTLOCK_VERSION " ready: " + std::to_string(service_->tracked_users()) +
        " tracked user(s), event socket " + config_.options.event_socket +
        (inherited_.event ? " (from systemd)" : "") + ", admin socket " +
        config_.options.admin_socket + (inherited_.admin ? " (from systemd)" : "") +
        (metrics_server_ ? ", metrics on http://" + metrics_server_->local_address() + "/metrics"
                         : std::string()) +
        ", " + describe_store(config_.options, *store_) + ", lock events to " +
        (to_journal ? "the journal" : "stderr"));
    sd_notify(0, "READY=1\nSTATUS=Serving");
    io_.run();
    reader_->stop();
    maintenance_->stop();
    writer_->shut_down();
    // Sockets this process created go with it, so clients fail fast instead of
    // connecting to nothing. (Sockets from systemd are systemd's to remove.)
    for (const auto& path : created_sockets_) unlink(path.c_str());
    log_notice("acctlockd stopped");
    return exit_code_;
  }

 private:
  // A socket from systemd is used as it is (systemd owns its file and mode);
  // otherwise this process creates it, and removes it on exit.
  UnixAcceptor socket_for(const std::optional<int>& inherited, const std::string& path,
                          mode_t mode) {
    if (inherited) return adopt_unix_socket(io_, *inherited);
    UnixAcceptor acceptor = listen_unix_socket(io_, path, mode);
    created_sockets_.push_back(path);
    return acceptor;
  }

  bool open_event_socket() {
    const Options& o = config_.options;
    EventServerLimits limits;
    std::string report;
    bool shortened = false;
    // Beyond the event connections: the admin socket's, and a margin for
    // the database, WAL, journal and listening sockets.
    constexpr std::size_t kOtherDescriptors = AdminServerLimits{}.max_connections + 64;
    limits.shares =
        fit_to_file_limit(UidLimitSettings{o.max_connections, o.root_reserved_connections,
                                           o.max_connections_per_uid, o.max_requests_per_uid},
                          kOtherDescriptors, report, shortened);
    if (shortened) {
      log_warning(report);
    } else {
      log_notice(report);
    }
    try {
      event_server_ = std::make_unique<EventServer>(
          socket_for(inherited_.event, config_.options.event_socket, 0666),
          EventServerContext{*service_, *writer_, users_, wall_clock_now, limits,
                             [this] { return file_problem_reported_; }});
    } catch (const std::exception& e) {
      log_error(std::string("cannot listen on the event socket: ") + e.what());
      return false;
    }
    event_server_->start();
    return true;
  }

  // admin_socket_group is checked here so that a misspelt group stops the
  // start instead of silently leaving the admin socket to root alone.
  bool open_admin_socket() {
    for (const std::string& note : migration_notes(config_.options)) log_warning(note);
    const std::string& group = config_.options.admin_socket_group;
    if (!group.empty() && !group_id(group)) {
      log_error("admin_socket_group \"" + group + "\" is not a group on this system");
      return false;
    }
    try {
      admin_server_ = std::make_unique<AdminServer>(
          socket_for(inherited_.admin, config_.options.admin_socket, kAdminSocketMode),
          AdminContext{*service_, *writer_, *store_, users_, wall_clock_now,
                       [this] { return config_.options.admin_socket_group; }, reader_.get(),
                       &watchers_, &io_});
    } catch (const std::exception& e) {
      log_error(std::string("cannot listen on the admin socket: ") + e.what());
      return false;
    }
    admin_server_->start();
    return true;
  }

  // The metrics socket is opt-in: systemd's acctlockd-metrics.socket or
  // --metrics-fd. Without one there is no HTTP at all.
  bool open_metrics_socket() {
    if (inherited_.metrics && config_.metrics_fd) {
      log_error("a metrics socket came from systemd and --metrics-fd as well; give one");
      return false;
    }
    const std::optional<int> fd = inherited_.metrics ? inherited_.metrics : config_.metrics_fd;
    if (!fd) return true;
    try {
      // Inherited descriptors may lack close-on-exec; nothing else may get it.
      if (fcntl(*fd, F_SETFD, FD_CLOEXEC) != 0) {
        throw std::runtime_error("descriptor " + std::to_string(*fd) + ": " + std::strerror(errno));
      }
      metrics_server_ = std::make_unique<MetricsServer>(adopt_tcp_socket(io_, *fd),
                                                        [this] { return metrics_->render(); });
    } catch (const std::exception& e) {
      log_error(std::string("cannot serve metrics: ") + e.what());
      return false;
    }
    metrics_server_->start();
    return true;
  }

  // What the metrics read from the other parts at a scrape.
  MetricsSnapshot metrics_snapshot() {
    MetricsSnapshot snapshot;
    const auto locked = service_->locked_counts(wall_clock_now());
    snapshot.locked_failures = locked.failures;
    snapshot.locked_permanent = locked.permanent;
    snapshot.locked_manual = locked.manual;
    snapshot.locked_unfamiliar_scope = locked.unfamiliar_scope;
    snapshot.tracked_users = service_->tracked_users();
    snapshot.fleet = store_->fleet_status();
    snapshot.tracked_sources = service_->tracked_sources();
    for (const auto& report :
         service_->source_page("", service_->blocked_sources(), true, wall_clock_now())) {
      if (report.status.locked()) ++snapshot.blocked_sources;
    }
    if (event_server_) snapshot.refused_event_peers = event_server_->refused_peers();
    if (admin_server_) snapshot.refused_admin_peers = admin_server_->refused_requests();
    for (const char* suffix : {"", "-wal"}) {
      struct stat file {};
      if (stat((config_.options.database + suffix).c_str(), &file) == 0) {
        snapshot.database_bytes += static_cast<std::uint64_t>(file.st_size);
      }
    }
    snapshot.watchers = watchers_.size();
    snapshot.host_name = store_->host_name();
    snapshot.shared_store = store_->shared();
    snapshot.evicted_sources = service_->evicted_sources();
    snapshot.history_aggregated_events = service_->history().aggregated_events();
    return snapshot;
  }

  // On the maintenance thread (a stat of a file on a hung disk must not
  // hold up the loop); reported once, as the problem stays.
  void schedule_file_check() {
    if (stopping_) return;
    file_check_timer_.expires_after(kFileCheckInterval);
    file_check_timer_.async_wait([this](error_code ec) {
      if (ec) return;
      Store& store = *store_;
      const bool queued = maintenance_->run(
          [&store] { return store.file_problem(); },
          [this](std::optional<std::string> problem, const std::string& error) {
            if (problem && !problem->empty() && !file_problem_reported_) {
              file_problem_reported_ = true;
              log_error(*problem);
              metrics_->record_file_problem();
            } else if (!problem) {
              log_error("cannot check the database file: " + error);
            }
            schedule_file_check();
          });
      if (!queued) schedule_file_check();
    });
  }

  // Pinged from the event loop itself, at half the interval systemd allows:
  // a loop that hangs stops pinging, and systemd restarts the daemon.
  void start_watchdog() {
    std::uint64_t interval_usec = 0;
    if (sd_watchdog_enabled(/*unset_environment=*/0, &interval_usec) <= 0) return;
    watchdog_interval_ = std::chrono::microseconds(interval_usec / 2);
    ping_watchdog();
  }

  void ping_watchdog() {
    if (stopping_) return;
    sd_notify(0, "WATCHDOG=1");
    watchdog_timer_.expires_after(watchdog_interval_);
    watchdog_timer_.async_wait([this](error_code ec) {
      if (!ec) ping_watchdog();
    });
  }

  void wait_for_signal() {
    signals_.async_wait([this](error_code ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        reload();
        return wait_for_signal();
      }
      shut_down();
    });
  }

  // Rows the fleet changed, read under `stamp` (BatchWriter::read_stamp),
  // into memory; those read before a commit of this host with steps for
  // them had landed are read again after the next commit (adopt_shared).
  void adopt_fleet_rows(const std::vector<SharedStateChange>& changes, std::uint64_t stamp) {
    // A lock end this brings is announced through on_new_expiry.
    const auto deferred = service_->adopt_shared(
        changes, writer_->pending(), wall_clock_now(),
        [this, stamp](SharedTable table, const std::string& key) {
          return writer_->row_read_is_current(table, key, stamp);
        });
    rows_to_read_again_.insert(deferred.begin(), deferred.end());
    if (!deferred.empty() && !writer_->busy()) read_deferred_fleet_rows();
  }

  // The rows deferred by adopt_fleet_rows, read again by the store's
  // listening thread (so in order with its other reads): after each commit,
  // and at once when none is running.
  void read_deferred_fleet_rows() {
    if (rows_to_read_again_.empty()) return;
    store_->read_shared_rows_again(
        Store::SharedRowKeys(rows_to_read_again_.begin(), rows_to_read_again_.end()));
    rows_to_read_again_.clear();
  }

  // store = postgresql: other hosts' commits reach memory here, read back
  // by the store's listening thread and applied on the loop (docs/fleet.md).
  void watch_the_fleet() {
    Store::SharedStateWatch watch;
    watch.changed = [this](std::vector<SharedStateChange> changes, std::uint64_t stamp) {
      asio::post(io_, [this, changes = std::move(changes), stamp] {
        // Handlers run only once the loop runs, when the writer exists.
        adopt_fleet_rows(changes, stamp);
        // The listener's reads come in order: no later one is older.
        writer_->forget_rows_committed_by(stamp);
      });
    };
    // From the listener's thread, which may read before the writer exists.
    watch.read_stamp = [this] {
      const BatchWriter* writer = stamp_source_.load();
      return writer ? writer->read_stamp() : 0;
    };
    watch.reload = [this] {
      asio::post(io_, [this] {
        log_warning("fleet: listening to the other hosts again; changes made meanwhile may "
                    "have been missed, so all state is read again");
        try {
          service_->load_from_store();
        } catch (const std::exception& e) {
          log_error(std::string("fleet: cannot reload state: ") + e.what());
        }
        schedule_expiry();
      });
    };
    watch.trouble = [](const std::string& problem) { log_warning("fleet: " + problem); };
    store_->watch_shared_state(std::move(watch));
  }

  // A host that started while the fleet's server was away (docs/fleet.md,
  // "Starting apart") says so once, with what it enforces with.
  void report_start_apart() {
    auto* fleet = dynamic_cast<PostgresqlStore*>(store_.get());
    if (fleet == nullptr) return;
    const FleetStatus status = fleet->fleet_status().value_or(FleetStatus{});
    if (!status.started_apart) return;
    fleet_apart_reported_ = true;
    const auto written = fleet->local_copy_written_at();
    std::string what;
    if (written) {
      char when[64] = "?";
      const std::time_t seconds = written->time_since_epoch().count();
      std::tm local{};
      if (localtime_r(&seconds, &local) != nullptr) {
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &local);
      }
      what = "the local copy of the fleet's rows as this host last had them (written " +
             std::string(when) + ", " + std::to_string(service_->tracked_users()) +
             " user(s)), and its own events";
    } else {
      what = "its own events only (no local copy of the fleet's rows: this host never "
             "reached the server from here)";
    }
    log_warning("fleet: started apart from " + fleet->server() + " (" + status.problem +
                "); enforcing with " + what +
                ", kept in the outbox until the server answers; a lock another host set "
                "meanwhile is not known here until then");
  }

  // A fleet problem for the journal, each time it changes: a server that
  // refuses this host (credentials, schema) is an error an operator must
  // fix; the host stays apart and enforces meanwhile.
  void report_fleet_problem(PostgresqlStore& fleet, const std::string& replay_error) {
    const FleetStatus status = fleet.fleet_status().value_or(FleetStatus{});
    std::string problem;
    if (!replay_error.empty()) {
      problem = "cannot replay the outbox: " + replay_error;
    } else if (status.refused) {
      problem = fleet.server() + " refuses this host: " + status.problem +
                "; staying apart, enforcing with this host's state, until it is fixed";
    }
    if (problem.empty() || problem == fleet_problem_reported_) {
      if (problem.empty()) fleet_problem_reported_.clear();
      return;
    }
    fleet_problem_reported_ = problem;
    log_error("fleet: " + problem);
  }

  // Degraded mode (store = postgresql): says when this host went apart from
  // the fleet, and replays its outbox once the server answers again, on the
  // maintenance thread. Checked every second.
  void schedule_fleet_check() {
    auto* fleet = dynamic_cast<PostgresqlStore*>(store_.get());
    if (stopping_ || fleet == nullptr) return;
    fleet_timer_.expires_after(kFleetCheckInterval);
    fleet_timer_.async_wait([this, fleet](error_code ec) {
      if (ec) return;
      const FleetStatus status = fleet->fleet_status().value_or(FleetStatus{});
      if (status.apart && !fleet_apart_reported_) {
        fleet_apart_reported_ = true;
        log_warning("fleet: apart from " + fleet->server() + " (" + status.problem +
                    "); enforcing with this host's state, and keeping its events in the "
                    "outbox until the server answers again");
      }
      if (!status.apart || catching_up_) return schedule_fleet_check();
      catching_up_ = true;
      const Options options = config_.options;
      const bool queued = maintenance_->run(
          [this, fleet, options] {
            return catch_up(
                *fleet,
                [&options](LockoutService& service) {
                  apply_options(service, options);
                  // This thread's own lookups: the loop's cache is the loop's.
                  auto users = std::make_shared<UserDirectory>();
                  service.on_group_check([users](const std::string& user,
                                                 const std::string& group) {
                    const auto uid = users->uid_of(user);
                    return uid && UserDirectory::is_in_group(*uid, group);
                  });
                },
                kCatchUpBatchesPerRun, replay_batch_);
          },
          [this, fleet](std::optional<CatchUpResult> result, const std::string& error) {
            catching_up_ = false;
            if (result && result->already_landed > 0) {
              log_info("fleet: " + std::to_string(result->already_landed) +
                       " event(s) of the outbox were on the server already (their commit "
                       "timed out here but landed there): not counted again");
            }
            report_fleet_problem(*fleet, result ? std::string() : error);
            if (!result) {
              // Reported above, once while it stays the same.
            } else if (result->caught_up) {
              fleet_apart_reported_ = false;
              log_notice("fleet: caught up with " + fleet->server() +
                         ": the outbox is replayed, commits go to the server again");
              try {
                service_->load_from_store();
              } catch (const std::exception& e) {
                log_error(std::string("fleet: cannot reload state: ") + e.what());
              }
            } else if (result->replayed > 0) {
              log_info("fleet: replayed " + std::to_string(result->replayed) +
                       " event(s) of the outbox; " +
                       std::to_string(fleet->fleet_status().value_or(FleetStatus{}).waiting) +
                       " waiting");
            }
            schedule_fleet_check();
          });
      if (!queued) {
        catching_up_ = false;
        schedule_fleet_check();
      }
    });
  }

  void reload() {
    sd_notify(0, "RELOADING=1");
    auto parsed = load_config(config_.config_path, config_.config_missing_ok);
    for (const auto& diagnostic : parsed.diagnostics) {
      log(diagnostic.severity == Diagnostic::Severity::error ? LogLevel::error : LogLevel::warning,
          diagnostic.to_string());
    }
    if (parsed.has_errors()) {
      log_error("reload: " + config_.config_path +
                " has errors; keeping the running configuration");
    } else {
      const Options& fresh = parsed.options;
      if (fresh.event_socket != config_.options.event_socket ||
          fresh.admin_socket != config_.options.admin_socket ||
          fresh.database != config_.options.database || fresh.store != config_.options.store ||
          fresh.postgresql != config_.options.postgresql ||
          fresh.host_name != config_.options.host_name) {
        log_warning("reload: socket and database paths change only on restart");
      }
      const bool retention_changed = fresh.history_retention != config_.options.history_retention;
      Options applied = fresh;
      applied.event_socket = config_.options.event_socket;
      applied.admin_socket = config_.options.admin_socket;
      applied.database = config_.options.database;
      applied.store = config_.options.store;
      applied.postgresql = config_.options.postgresql;
      applied.host_name = config_.options.host_name;
      const SprayRules previous_spray = config_.options.spray;
      config_.options = applied;
      service_->set_rules(applied.rules);
      service_->set_service_rules(applied.service_rules);
      service_->set_groups(applied.admin_group, applied.exempt_group);
      service_->set_source_rules(applied.source_rules, applied.max_tracked_sources);
      service_->set_history_limits(history_limits(applied));
      if (applied.spray != previous_spray) service_->set_spray_rules(applied.spray);
      service_->set_familiar_rules(applied.familiar_sources);
      schedule_expiry();
      log_notice("reloaded " + config_.config_path);
      // A shorter retention applies now, not at the next hourly prune.
      if (retention_changed) prune_soon();
    }
    sd_notify(0, "READY=1");
  }

  void shut_down() {
    if (stopping_) return;
    stopping_ = true;
    sd_notify(0, "STOPPING=1");
    log_notice("stopping");
    event_server_->stop();
    admin_server_->stop();
    if (metrics_server_) metrics_server_->stop();
    expiry_timer_.cancel();
    retention_timer_.cancel();
    sweep_timer_.cancel();
    file_check_timer_.cancel();
    watchdog_timer_.cancel();
    signals_.cancel();
    finish_when_idle();
  }

  // Lets the last commit finish so no acknowledged event is lost, then ends
  // the loop.
  void finish_when_idle() {
    writer_->flush();
    if (!writer_->busy()) {
      io_.stop();
      return;
    }
    writer_->after_commit([this](const std::string&) { finish_when_idle(); });
  }

  void schedule_expiry() {
    if (stopping_) return;
    const TimePoint now = wall_clock_now();
    auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(kExpiryRecheck);
    expiry_due_.reset();
    if (const auto next = service_->next_expiry()) {
      expiry_due_ = *next;
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::max(*next - now, Seconds(0))));
    }
    expiry_timer_.expires_after(wait);
    expiry_timer_.async_wait([this](error_code ec) {
      if (ec) return;
      service_->expire_due(wall_clock_now(), writer_->pending());
      writer_->flush();
      schedule_expiry();
    });
  }

  // History past retention is deleted on the maintenance thread, a slice at
  // a time; the loop only schedules the slices.
  void prune_history() {
    if (stopping_ || pruning_) return;
    pruning_ = true;
    prune_slice(wall_clock_now() - config_.options.history_retention, 0);
  }

  void prune_slice(TimePoint before, std::uint64_t removed_so_far) {
    if (stopping_) return;
    Store& store = *store_;
    const bool queued = maintenance_->run(
        [&store, before] { return store.prune_history_slice_counted(before, kPruneSlice); },
        [this, before, removed_so_far](std::optional<HistoryUsage> removed,
                                       const std::string& error) {
          if (!removed) {
            log_error("cannot prune history: " + error);
            metrics_->record_prune_error();
            return schedule_prune(kRetentionInterval);
          }
          // The history caps' counts follow the rows that went.
          service_->history().forget(*removed);
          const std::uint64_t total = removed_so_far + removed->rows;
          if (removed->rows >= kPruneSlice) {
            retention_timer_.expires_after(kPrunePause);
            retention_timer_.async_wait([this, before, total](error_code ec) {
              if (!ec) prune_slice(before, total);
            });
            return;
          }
          if (total > 0) {
            log_info("removed " + std::to_string(total) + " history row(s) past retention");
          }
          schedule_prune(kRetentionInterval);
        });
    if (!queued) schedule_prune(kRetentionInterval);
  }

  // Starts a prune now, or right after the one in progress.
  void prune_soon() {
    if (pruning_) {
      prune_again_ = true;
      return;
    }
    retention_timer_.cancel();
    asio::post(io_, [this] { prune_history(); });
  }

  void schedule_prune(std::chrono::steady_clock::duration wait) {
    pruning_ = false;
    if (stopping_) return;
    if (prune_again_) {
      prune_again_ = false;
      wait = std::chrono::steady_clock::duration::zero();
    }
    retention_timer_.expires_after(wait);
    retention_timer_.async_wait([this](error_code ec) {
      if (!ec) prune_history();
    });
  }

  // Idle users (nothing left to remember: LockoutPolicy::is_idle) leave
  // memory and the database in passes of small slices, each its own turn of
  // the loop, so that a login waits for one slice at most.
  std::chrono::steady_clock::duration sweep_interval() const {
    const auto quarter =
        std::chrono::duration_cast<std::chrono::seconds>(config_.options.rules.fail_interval / 4);
    return std::clamp<std::chrono::seconds>(quarter, kMinSweepInterval, kMaxSweepInterval);
  }

  void schedule_sweep() {
    if (stopping_) return;
    sweep_timer_.expires_after(sweep_interval());
    sweep_timer_.async_wait([this](error_code ec) {
      if (!ec) sweep_slice(0);
    });
  }

  void sweep_slice(std::size_t removed_so_far) {
    if (stopping_) return;
    const auto progress = service_->sweep_slice(wall_clock_now(), kSweepSlice, writer_->pending());
    writer_->flush();
    const std::size_t removed = removed_so_far + progress.removed;
    if (!progress.pass_done) {
      asio::post(io_, [this, removed] { sweep_slice(removed); });
      return;
    }
    if (removed > 0) {
      log_info("swept " + std::to_string(removed) + " idle user(s); " +
               std::to_string(service_->tracked_users()) + " tracked");
    }
    if (removed >= kTrimAfterRemoved) malloc_trim(0);
    schedule_sweep();
  }

  DaemonConfig config_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer expiry_timer_;
  std::optional<TimePoint> expiry_due_;  // the lock end the expiry timer waits for
  asio::steady_timer retention_timer_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer file_check_timer_;
  asio::steady_timer watchdog_timer_;
  asio::steady_timer fleet_timer_;
  bool fleet_apart_reported_ = false;
  std::string fleet_problem_reported_;  // the last fleet error logged
  std::set<std::pair<SharedTable, std::string>> rows_to_read_again_;
  std::atomic<const BatchWriter*> stamp_source_{nullptr};  // writer_, once made
  bool catching_up_ = false;
  // Events per replayed batch, adjusted by each catch-up on the
  // maintenance thread (only it touches it: one catch-up at a time).
  std::size_t replay_batch_ = kMaxReplayBatch;
  std::chrono::microseconds watchdog_interval_{0};
  InheritedSockets inherited_;
  std::unique_ptr<Store> store_;
  // After the store, so they stop before it closes.
  std::unique_ptr<WorkerThread> reader_;       // admin reads
  bool file_problem_reported_ = false;
  std::unique_ptr<WorkerThread> maintenance_;  // history pruning
  std::unique_ptr<LockoutService> service_;
  std::unique_ptr<EventLog> event_log_;
  // Before the writer, whose commit observer uses them: destroyed after it.
  std::unique_ptr<DaemonMetrics> metrics_;
  EventWatchers watchers_;
  EventLogFanOut loop_event_fan_out_;
  std::unique_ptr<BatchWriter> writer_;
  std::unique_ptr<EventServer> event_server_;
  std::unique_ptr<AdminServer> admin_server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  UserDirectory users_;
  std::vector<std::string> created_sockets_;
  bool pruning_ = false;      // a prune's slices are under way
  bool prune_again_ = false;  // retention changed meanwhile: prune again after it
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_daemon(const DaemonConfig& config) {
  Daemon daemon(config);
  return daemon.run();
}

}  // namespace acctlock
