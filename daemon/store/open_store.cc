// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/open_store.h"

#include <unistd.h>

#include <climits>
#include <filesystem>

#include "daemon/store/postgresql/postgresql_store.h"
#include "daemon/store/sqlite/sqlite_store.h"

namespace acctlock {

std::string fleet_host_name(const Options& options) {
  if (!options.host_name.empty()) return options.host_name;
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    throw StoreError("cannot read the machine's host name; set host_name in acctlock.conf");
  }
  return name;
}

std::unique_ptr<Store> open_store(const Options& options) {
  if (options.store == StoreKind::sqlite) {
    // The file is this host's alone; its rows report this host's name. A
    // machine without a name (gethostname failing) still starts: the name
    // is only shown, never written, so its rows report none.
    std::string host_name;
    try {
      host_name = fleet_host_name(options);
    } catch (const StoreError&) {
    }
    return SqliteStore::open(options.database, std::move(host_name));
  }
  PostgresqlSettings settings;
  // A connection string never starts with '/': key=value or a URI.
  const bool from_file = options.postgresql.starts_with('/');
  settings.conninfo = from_file ? read_conninfo_file(options.postgresql) : options.postgresql;
  check_conninfo(settings.conninfo, !from_file);
  settings.host_name = fleet_host_name(options);
  // Degraded mode keeps its events next to where the SQLite store would be
  // (docs/fleet.md): the state directory the unit gives the daemon.
  settings.outbox_path =
      (std::filesystem::path(options.database).parent_path() / "fleet-outbox.db").string();
  // Recorded in fleet_host at the first contact: at once, or, for a host
  // that starts while the server is away, when it answers.
  settings.register_this_host = true;
  return PostgresqlStore::open(settings);
}

std::string describe_store(const Options& options, const Store& store) {
  if (const auto* postgresql = dynamic_cast<const PostgresqlStore*>(&store)) {
    return "PostgreSQL " + postgresql->server() + " as host " + postgresql->host_name();
  }
  return "database " + options.database;
}

}  // namespace acctlock
