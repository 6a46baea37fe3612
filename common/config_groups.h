// SPDX-License-Identifier: BSD-3-Clause
// Group keys must name groups that exist: a misspelt exempt_group silently
// exempts nobody, a misspelt admin_group makes wheel lockable. Shared by
// `acctlockd --check-config` and `acctlock doctor`; it asks NSS, so neither
// the PAM module nor the daemon's hot path calls it.
#pragma once

#include <string>

#include "common/options.h"

namespace acctlock {

// Adds an error to `parsed` for each group key naming no group.
void check_config_groups(ParsedConfig& parsed, const std::string& path);

}  // namespace acctlock
