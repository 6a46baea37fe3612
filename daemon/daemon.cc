#include "daemon/daemon.h"

#include <grp.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>

#include "daemon/admin/admin_server.h"
#include "daemon/admin/event_watchers.h"
#include "daemon/events/batch_writer.h"
#include "daemon/journal/event_log.h"
#include "daemon/events/event_server.h"
#include "daemon/journal/journal_event_log.h"
#include "daemon/lockout_service.h"
#include "daemon/log.h"
#include "daemon/metrics/daemon_metrics.h"
#include "daemon/metrics/metrics_server.h"
#include "daemon/sockets/peer_credentials.h"
#include "daemon/sockets/socket_activation.h"
#include "daemon/store/sqlite/sqlite_store.h"
#include "daemon/sockets/unix_socket.h"

namespace acctlock {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Wall-clock locks are re-checked at least this often, so a clock jump is
// noticed within this bound even when no expiry is near.
constexpr auto kExpiryRecheck = std::chrono::seconds(60);
constexpr auto kRetentionInterval = std::chrono::hours(1);

class Daemon {
 public:
  explicit Daemon(DaemonConfig config)
      : config_(std::move(config)),
        signals_(io_, SIGTERM, SIGINT, SIGHUP),
        expiry_timer_(io_),
        retention_timer_(io_),
        watchdog_timer_(io_) {}

  int run() {
    try {
      store_ = SqliteStore::open(config_.options.database);
      service_ = std::make_unique<LockoutService>(config_.options.rules, *store_);
      service_->load_from_store();
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
    // Each committed event goes to the journal (or stderr), the counters and
    // the watchers, in that order.
    event_fan_out_.add(*event_log_);
    event_fan_out_.add(*metrics_);
    event_fan_out_.add(watchers_);
    writer_ = std::make_unique<BatchWriter>(io_, *store_, event_fan_out_, [this] {
      log_warning("reloading state from the database after a failed commit");
      try {
        service_->load_from_store();
      } catch (const std::exception& e) {
        log_error(std::string("cannot reload state: ") + e.what());
      }
    });

    writer_->on_commit([this](std::chrono::duration<double> took, std::size_t events,
                              bool failed) { metrics_->record_commit(took, events, failed); });

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
    prune_history();
    start_watchdog();

    log_notice(
        "acctlockd " ACCTLOCK_VERSION " ready: " + std::to_string(service_->tracked_users()) +
        " tracked user(s), event socket " + config_.options.event_socket +
        (inherited_.event ? " (from systemd)" : "") + ", admin socket " +
        config_.options.admin_socket + (inherited_.admin ? " (from systemd)" : "") +
        (metrics_server_ ? ", metrics on http://" + metrics_server_->local_address() + "/metrics"
                         : std::string()) +
        ", database " +
        config_.options.database + ", lock events to " + (to_journal ? "the journal" : "stderr"));
    sd_notify(0, "READY=1\nSTATUS=Serving");
    io_.run();
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
    try {
      event_server_ = std::make_unique<EventServer>(
          socket_for(inherited_.event, config_.options.event_socket, 0666),
          EventServerContext{*service_, *writer_, users_, wall_clock_now, {}});
    } catch (const std::exception& e) {
      log_error(std::string("cannot listen on the event socket: ") + e.what());
      return false;
    }
    event_server_->start();
    return true;
  }

  // admin_group is checked here so that a misspelt group stops the start
  // instead of silently leaving the admin socket to root alone.
  bool open_admin_socket() {
    const std::string& group = config_.options.admin_group;
    if (!group.empty() && !group_id(group)) {
      log_error("admin_group \"" + group + "\" is not a group on this system");
      return false;
    }
    try {
      admin_server_ = std::make_unique<AdminServer>(
          socket_for(inherited_.admin, config_.options.admin_socket, kAdminSocketMode),
          AdminContext{*service_, *writer_, *store_, users_, wall_clock_now,
                       [this] { return config_.options.admin_group; }, &watchers_});
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
        throw std::runtime_error("descriptor " + std::to_string(*fd) + ": " +
                                 std::strerror(errno));
      }
      metrics_server_ = std::make_unique<MetricsServer>(
          adopt_tcp_socket(io_, *fd), [this] { return metrics_->render(); });
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
    snapshot.tracked_users = service_->tracked_users();
    if (event_server_) snapshot.refused_event_peers = event_server_->refused_peers();
    if (admin_server_) snapshot.refused_admin_peers = admin_server_->refused_requests();
    for (const char* suffix : {"", "-wal"}) {
      struct stat file {};
      if (stat((config_.options.database + suffix).c_str(), &file) == 0) {
        snapshot.database_bytes += static_cast<std::uint64_t>(file.st_size);
      }
    }
    snapshot.watchers = watchers_.size();
    return snapshot;
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
          fresh.database != config_.options.database) {
        log_warning("reload: socket and database paths change only on restart");
      }
      Options applied = fresh;
      applied.event_socket = config_.options.event_socket;
      applied.admin_socket = config_.options.admin_socket;
      applied.database = config_.options.database;
      config_.options = applied;
      service_->set_rules(applied.rules);
      schedule_expiry();
      log_notice("reloaded " + config_.config_path);
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

  void prune_history() {
    if (stopping_) return;
    try {
      const auto removed =
          store_->prune_history(wall_clock_now() - config_.options.history_retention);
      if (removed > 0)
        log_info("removed " + std::to_string(removed) + " history row(s) past retention");
    } catch (const std::exception& e) {
      log_error(std::string("cannot prune history: ") + e.what());
      metrics_->record_prune_error();
    }
    retention_timer_.expires_after(kRetentionInterval);
    retention_timer_.async_wait([this](error_code ec) {
      if (!ec) prune_history();
    });
  }

  DaemonConfig config_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer expiry_timer_;
  std::optional<TimePoint> expiry_due_;  // the lock end the expiry timer waits for
  asio::steady_timer retention_timer_;
  asio::steady_timer watchdog_timer_;
  std::chrono::microseconds watchdog_interval_{0};
  InheritedSockets inherited_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LockoutService> service_;
  std::unique_ptr<EventLog> event_log_;
  // Before the writer, which holds the fan-out: destroyed after it.
  std::unique_ptr<DaemonMetrics> metrics_;
  EventWatchers watchers_;
  EventLogFanOut event_fan_out_;
  std::unique_ptr<BatchWriter> writer_;
  std::unique_ptr<EventServer> event_server_;
  std::unique_ptr<AdminServer> admin_server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  UserDirectory users_;
  std::vector<std::string> created_sockets_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_daemon(const DaemonConfig& config) {
  Daemon daemon(config);
  return daemon.run();
}

}  // namespace acctlock
