// SPDX-License-Identifier: BSD-3-Clause
#include "common/user_name.h"

#include <gtest/gtest.h>

#include <string>

namespace acctlock {
namespace {

TEST(UserName, OrdinaryAndDirectoryNamesAreValid) {
  EXPECT_TRUE(is_valid_user_name("alice"));
  EXPECT_TRUE(is_valid_user_name("svc-backup_01"));
  EXPECT_TRUE(is_valid_user_name("alice@EXAMPLE.COM"));
  EXPECT_TRUE(is_valid_user_name("j\xc3\xbcrgen"));  // UTF-8 from a directory
}

TEST(UserName, EmptyAndOverlongNamesAreInvalid) {
  EXPECT_FALSE(is_valid_user_name(""));
  EXPECT_TRUE(is_valid_user_name(std::string(kMaxUserNameLength, 'a')));
  EXPECT_FALSE(is_valid_user_name(std::string(kMaxUserNameLength + 1, 'a')));
}

TEST(UserName, ControlCharactersAndPathsAreInvalid) {
  EXPECT_FALSE(is_valid_user_name(std::string("al\0ice", 6)));
  EXPECT_FALSE(is_valid_user_name("alice\n"));
  EXPECT_FALSE(is_valid_user_name("al\tice"));
  EXPECT_FALSE(is_valid_user_name("al\x7f" "ice"));
  EXPECT_FALSE(is_valid_user_name("../etc"));
  EXPECT_FALSE(is_valid_user_name("."));
  EXPECT_FALSE(is_valid_user_name(".."));
}

}  // namespace
}  // namespace acctlock
