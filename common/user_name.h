// SPDX-License-Identifier: BSD-3-Clause
// Which user names acctlock accepts. A name that fails here is answered with an
// error and never stored, so the database only ever holds printable names.
#pragma once

#include <cstddef>
#include <string_view>

namespace acctlock {

// LOGIN_NAME_MAX on Linux, including the terminating NUL.
inline constexpr std::size_t kMaxUserNameLength = 255;

// Non-empty, at most kMaxUserNameLength bytes, no control characters (bytes
// below 0x20 and 0x7f), no '/' and not "." or "..". Bytes >= 0x80 are allowed
// because NSS sources (LDAP, AD through SSSD) hand out UTF-8 names.
bool is_valid_user_name(std::string_view name) noexcept;

}  // namespace acctlock
