// SPDX-License-Identifier: BSD-3-Clause
#include "common/user_name.h"

namespace acctlock {

bool is_valid_user_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxUserNameLength) return false;
  if (name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '/') return false;
  }
  return true;
}

}  // namespace acctlock
