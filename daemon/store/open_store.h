// SPDX-License-Identifier: BSD-3-Clause
// The store the configuration asks for (store = sqlite | postgresql).
#pragma once

#include <memory>
#include <string>

#include "common/options.h"
#include "daemon/store/store.h"

namespace acctlock {

// Opens the configured store. For PostgreSQL, reads the connection string
// from its file when `postgresql` is an absolute path (checked: private to
// the daemon), and refuses a password written into acctlock.conf itself.
// Throws StoreError.
std::unique_ptr<Store> open_store(const Options& options);

// Where the store is, for the journal: a path, or PostgreSQL's
// host:port/database and this host's name; never a password.
std::string describe_store(const Options& options, const Store& store);

// The name recorded with this host's history rows: host_name, or the
// machine's host name.
std::string fleet_host_name(const Options& options);

}  // namespace acctlock
