// SPDX-License-Identifier: BSD-3-Clause
// Text from peers made safe for a log line or a terminal.
//
// User names, hosts and reasons come from local users and remote clients; a
// newline in one would forge a log line, an ESC or OSC sequence would drive
// the reader's terminal, and U+202E would reorder what an admin reads. The
// daemon's stderr log and the `acctlock` command both print such fields
// through escaped(); journald fields keep the raw bytes.
#pragma once

#include <string>
#include <string_view>

namespace acctlock {

// Returns `text` with C0 controls, DEL, C1 controls (U+0080..U+009F),
// bidirectional controls (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069),
// backslash and bytes that are not UTF-8 written as \xNN / \u{NNNN}
// escapes. Printable UTF-8 passes unchanged.
std::string escaped(std::string_view text);

}  // namespace acctlock
