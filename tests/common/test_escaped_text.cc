// SPDX-License-Identifier: BSD-3-Clause
#include "common/escaped_text.h"

#include <gtest/gtest.h>

namespace acctlock {
namespace {

TEST(EscapedText, PrintableUtf8PassesUnchanged) {
  EXPECT_EQ(escaped("alice@198.51.100.4 sshd"), "alice@198.51.100.4 sshd");
  EXPECT_EQ(escaped("jos\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"), "jos\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
}

TEST(EscapedText, C0ControlsAndDelCannotForgeALineOrDriveATerminal) {
  EXPECT_EQ(escaped("host\nlocked user=root"), "host\\x0alocked user=root");
  EXPECT_EQ(escaped("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
  EXPECT_EQ(escaped(std::string("a\0b\x7f", 4)), "a\\x00b\\x7f");
  // The escape character itself is escaped, so an escape cannot be faked.
  EXPECT_EQ(escaped("\\x0a"), "\\\\x0a");
}

TEST(EscapedText, C1AndBidiControlsAreEscaped) {
  EXPECT_EQ(escaped("a\xc2\x9b" "31m"), "a\\u{009b}31m");          // CSI
  EXPECT_EQ(escaped("\xe2\x80\xae" "nimda"), "\\u{202e}nimda");    // RLO
  EXPECT_EQ(escaped("\xe2\x81\xa6x\xe2\x80\x8f"), "\\u{2066}x\\u{200f}");
}

TEST(EscapedText, BytesThatAreNotUtf8AreEscapedOneByOne) {
  EXPECT_EQ(escaped("caf\xe9"), "caf\\xe9");
  EXPECT_EQ(escaped("\xc0\xae"), "\\xc0\\xae");
  EXPECT_EQ(escaped("\xe2\x82"), "\\xe2\\x82");
}

}  // namespace
}  // namespace acctlock
