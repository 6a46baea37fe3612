// SPDX-License-Identifier: BSD-3-Clause
// A private directory for one test, removed with everything in it afterwards.
#pragma once

#include <filesystem>
#include <string>

namespace acctlock::test {

class TempDir {
 public:
  // World-searchable (0755) so processes run as another user (setpriv) can
  // reach sockets inside it.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Writes `text` to `path`, replacing it; fails the test on error.
void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

}  // namespace acctlock::test
