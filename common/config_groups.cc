// SPDX-License-Identifier: BSD-3-Clause
#include "common/config_groups.h"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

namespace acctlock {
namespace {

bool group_exists(const std::string& name) {
  const long hint = sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buffer(hint > 0 ? static_cast<std::size_t>(hint) : 4096);
  for (;;) {
    group entry{};
    group* found = nullptr;
    const int error = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    return error == 0 && found != nullptr;
  }
}

}  // namespace

void check_config_groups(ParsedConfig& parsed, const std::string& path) {
  const Options& o = parsed.options;
  for (const auto& [key, group] :
       {std::pair<const char*, const std::string*>{"admin_group", &o.admin_group},
        {"admin_socket_group", &o.admin_socket_group},
        {"exempt_group", &o.exempt_group}}) {
    if (group->empty() || group_exists(*group)) continue;
    parsed.diagnostics.push_back({Diagnostic::Severity::error, path, 0, key,
                                  "\"" + *group + "\" is not a group on this system"});
  }
}

}  // namespace acctlock
