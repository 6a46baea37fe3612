// SPDX-License-Identifier: BSD-3-Clause
#include "tests/support/test_user.h"

#include <crypt.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.h"

namespace acctlock::test {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A copy of `original` with new content and the original's owner, group and
// mode (unix_chkpwd reads shadow through group shadow). Created private
// first: the shadow copy holds the host's real hashes and must not be
// readable by others even for a moment.
bool write_copy(const std::string& path, const std::string& text, const std::string& original) {
  struct stat info {};
  if (stat(original.c_str(), &info) != 0) return false;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  const bool ok = written == text.size() && fchown(fd, info.st_uid, info.st_gid) == 0 &&
                  fchmod(fd, info.st_mode & 07777) == 0;
  return close(fd) == 0 && ok;
}

std::string with_line(std::string text, const std::string& line) {
  if (!text.empty() && text.back() != '\n') text += '\n';
  return text + line + '\n';
}

// A yescrypt hash, Debian 12's default, so pam_unix takes its usual path.
std::string hash_password(const std::string& password, std::string* why_not) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof salt) == nullptr) {
    *why_not = std::string("crypt_gensalt_rn: ") + std::strerror(errno);
    return {};
  }
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), salt, &data);
  if (hash == nullptr || hash[0] == '*') {
    *why_not = "crypt_r failed";
    return {};
  }
  return hash;
}

// The host's root, opened before the first unshare: lookups through it walk
// the host's mount tree, which the bind mounts never reach.
int host_root_fd = -1;
// Set once this process has put copies over the files. Those copies are
// unlinked, and the kernel refuses to mount over an unlinked file, so a
// later call first detaches them.
bool files_replaced = false;

}  // namespace

bool add_test_users(const std::vector<TestUser>& users, std::string* why_not) {
  if (geteuid() != 0) {
    *why_not = "needs root, to add test users inside a private mount namespace";
    return false;
  }
  for (const TestUser& user : users) {
    if (getpwnam(user.name.c_str()) != nullptr || getpwuid(user.uid) != nullptr ||
        getgrnam(user.name.c_str()) != nullptr || getgrgid(user.gid) != nullptr) {
      *why_not = "test user " + user.name + " or its ids already exist here";
      return false;
    }
  }
  if (host_root_fd < 0) host_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (unshare(CLONE_NEWNS) != 0) {
    *why_not =
        std::string("cannot make a private mount namespace: unshare: ") + std::strerror(errno);
    return false;
  }
  // Private from here on: the bind mounts below must not reach the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    *why_not = std::string("mount --make-rprivate /: ") + std::strerror(errno);
    return false;
  }

  std::string passwd = read_all("/etc/passwd");
  std::string shadow = read_all("/etc/shadow");
  std::string group = read_all("/etc/group");
  for (const TestUser& user : users) {
    const std::string hash = hash_password(user.password, why_not);
    if (hash.empty()) return false;
    const std::string uid = std::to_string(user.uid);
    const std::string gid = std::to_string(user.gid);
    passwd = with_line(passwd, user.name + ":x:" + uid + ":" + gid +
                                   ":acctlock test user:/nonexistent:" + user.shell);
    // Last change 20000 days after 1970 (2024): no ageing rule applies.
    shadow = with_line(shadow, user.name + ":" + hash + ":20000:0:99999:7:::");
    group = with_line(group, user.name + ":x:" + gid + ":");
  }

  // A mount holds its source's inode, so each copy is unlinked as soon as it
  // is mounted: the shadow copy, with the host's real hashes, does not stay
  // in the temp dir, and a later call starts from an empty one.
  const TempDir copies;
  struct Copy {
    const char* name;
    const std::string& text;
  };
  for (const Copy& file : {Copy{"passwd", passwd}, Copy{"shadow", shadow}, Copy{"group", group}}) {
    const std::string copy = copies / file.name;
    const std::string original = std::string("/etc/") + file.name;
    if (!write_copy(copy, file.text, original)) {
      *why_not = "cannot write " + copy;
      return false;
    }
    if (files_replaced) umount2(original.c_str(), MNT_DETACH);
    const bool mounted = mount(copy.c_str(), original.c_str(), nullptr, MS_BIND, nullptr) == 0;
    const int mount_errno = errno;
    unlink(copy.c_str());
    if (!mounted) {
      *why_not = "bind-mounting " + copy + " over " + original + ": " + std::strerror(mount_errno);
      return false;
    }
  }
  files_replaced = true;
  return true;
}

std::string read_host_file(const std::string& absolute_path) {
  if (host_root_fd < 0 || absolute_path.empty() || absolute_path[0] != '/') return {};
  const int fd = openat(host_root_fd, absolute_path.c_str() + 1, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char buffer[8192];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  close(fd);
  return text;
}

}  // namespace acctlock::test
