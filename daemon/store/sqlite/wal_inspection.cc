// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/sqlite/wal_inspection.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "daemon/store/store.h"

namespace acctlock {
namespace {

constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kFrameHeaderSize = 24;
constexpr std::uint32_t kMagicLittleEndianSums = 0x377f0682;
constexpr std::uint32_t kMagicBigEndianSums = 0x377f0683;
constexpr std::uint32_t kFormatVersion = 3007000;

std::uint32_t big_endian(const unsigned char* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::uint32_t little_endian(const unsigned char* bytes) {
  return (std::uint32_t{bytes[3]} << 24) | (std::uint32_t{bytes[2]} << 16) |
         (std::uint32_t{bytes[1]} << 8) | std::uint32_t{bytes[0]};
}

struct Checksum {
  std::uint32_t first = 0;
  std::uint32_t second = 0;
  bool operator==(const Checksum&) const = default;
};

// SQLite's running checksum: over 32-bit words taken two at a time, in the
// byte order the magic number names. `size` is a multiple of 8.
Checksum add_to_checksum(Checksum sum, const unsigned char* bytes, std::size_t size,
                         bool big_endian_words) {
  const auto word = big_endian_words ? big_endian : little_endian;
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    sum.first += word(bytes + i) + sum.second;
    sum.second += word(bytes + i + 4) + sum.first;
  }
  return sum;
}

bool valid_page_size(std::uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

class WalFile {
 public:
  explicit WalFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd_ < 0 && errno != ENOENT) fail("cannot open");
  }
  ~WalFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  WalFile(const WalFile&) = delete;
  WalFile& operator=(const WalFile&) = delete;

  bool exists() const { return fd_ >= 0; }

  std::uint64_t size() const {
    struct stat status {};
    if (fstat(fd_, &status) != 0) fail("cannot read the size of");
    return static_cast<std::uint64_t>(status.st_size);
  }

  void read_at(std::uint64_t offset, unsigned char* into, std::size_t size) const {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t got = ::pread(fd_, into + done, size - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail("cannot read");
      if (got == 0) {
        errno = 0;
        throw StoreError(path_ + ": shorter than it was a moment ago (something else writes it)");
      }
      done += static_cast<std::size_t>(got);
    }
  }

 private:
  [[noreturn]] void fail(const char* doing) const {
    throw StoreError(path_ + ": " + doing + " the write-ahead log: " + std::strerror(errno));
  }

  std::string path_;
  int fd_ = -1;
};

struct Frame {
  std::uint32_t page = 0;
  std::uint32_t commit_size = 0;  // the database size in pages after a commit; 0 otherwise
  std::uint32_t salt[2] = {};
  Checksum stored;
  Checksum computed_from_previous;  // from the stored checksum of the frame before
};

std::string plural(std::uint64_t count, const char* one, const char* many) {
  return std::to_string(count) + " " + (count == 1 ? one : many);
}

}  // namespace

WalInspection inspect_wal(const std::string& wal_path) {
  WalInspection result;
  const WalFile file(wal_path);
  if (!file.exists()) return result;
  const std::uint64_t size = file.size();
  // SQLite writes and syncs the header before any frame of its log
  // generation, so a log too short for one is a log with nothing in it.
  if (size < kHeaderSize) return result;

  std::array<unsigned char, kHeaderSize> header{};
  file.read_at(0, header.data(), header.size());
  const std::uint32_t magic = big_endian(&header[0]);
  const bool big_endian_words = magic == kMagicBigEndianSums;
  const std::uint32_t page_size = big_endian(&header[8]);
  const Checksum header_stored{big_endian(&header[24]), big_endian(&header[28])};
  const bool header_valid =
      (magic == kMagicLittleEndianSums || magic == kMagicBigEndianSums) &&
      valid_page_size(page_size) &&
      add_to_checksum({}, header.data(), 24, big_endian_words) == header_stored;
  if (header_valid && big_endian(&header[4]) != kFormatVersion) {
    throw StoreError(wal_path + ": a write-ahead log of an unknown format version (" +
                     std::to_string(big_endian(&header[4])) + ")");
  }
  if (!valid_page_size(page_size)) {
    // Without the page size the frames cannot be found; recovery ignores
    // such a log entirely.
    if (size > kHeaderSize) {
      result.outcome = WalInspection::Outcome::damaged_tail;
      result.description = wal_path + ": the write-ahead log's header is unreadable, so SQLite " +
                           "ignores the whole log (" + std::to_string(size) +
                           " bytes); if acctlockd did not stop in the middle of a commit, "
                           "acknowledged events in it are lost";
    }
    return result;
  }

  const std::size_t frame_size = kFrameHeaderSize + page_size;
  result.frames = (size - kHeaderSize) / frame_size;
  std::vector<unsigned char> buffer(frame_size);
  auto read_frame = [&](std::uint64_t index, const Checksum& previous_stored) {
    file.read_at(kHeaderSize + index * frame_size, buffer.data(), buffer.size());
    Frame frame;
    frame.page = big_endian(&buffer[0]);
    frame.commit_size = big_endian(&buffer[4]);
    frame.salt[0] = big_endian(&buffer[8]);
    frame.salt[1] = big_endian(&buffer[12]);
    frame.stored = {big_endian(&buffer[16]), big_endian(&buffer[20])};
    Checksum sum = add_to_checksum(previous_stored, buffer.data(), 8, big_endian_words);
    frame.computed_from_previous =
        add_to_checksum(sum, buffer.data() + kFrameHeaderSize, page_size, big_endian_words);
    return frame;
  };

  // A damaged header makes recovery ignore the log. Its generation's salts
  // are then those of the first frame, and its checksum chain starts from
  // the checksum the header stores (still there unless that is the damage).
  const std::uint32_t salt[2] = {big_endian(&header[16]), big_endian(&header[20])};
  std::uint64_t index = 0;
  Checksum previous = header_stored;
  std::uint64_t last_commit_end = 0;  // frames up to and including the last valid commit
  if (header_valid) {
    for (; index < result.frames; ++index) {
      const Frame frame = read_frame(index, previous);
      const bool valid = frame.page != 0 && frame.salt[0] == salt[0] &&
                         frame.salt[1] == salt[1] && frame.computed_from_previous == frame.stored;
      if (!valid) break;
      previous = frame.stored;
      if (frame.commit_size != 0) {
        last_commit_end = index + 1;
        ++result.kept_commits;
      }
    }
    result.kept_frames = last_commit_end;
    if (index == result.frames) return result;  // read to the end
  }

  // Past the break: frames of the same generation that are whole on their
  // own, one after another, and end a transaction.
  const std::uint64_t first_bad = index;
  std::uint32_t generation[2] = {salt[0], salt[1]};
  bool generation_known = header_valid;
  bool chained = true;  // the frame before was intact and of this generation
  for (; index < result.frames; ++index) {
    const Frame frame = read_frame(index, previous);
    if (!generation_known) {
      generation[0] = frame.salt[0];
      generation[1] = frame.salt[1];
      generation_known = true;
    }
    const bool same_generation = frame.salt[0] == generation[0] && frame.salt[1] == generation[1];
    const bool whole = same_generation && frame.page != 0 && chained &&
                       frame.computed_from_previous == frame.stored;
    // Under a damaged header, the frames belong to it only if the first one
    // follows from the checksum it stores; otherwise they are an older
    // generation's, already in the database.
    if (!header_valid && index == 0 && !whole) break;
    // The damaged frame itself may be a commit of this generation's: one
    // more that recovery drops.
    const bool damaged_commit =
        header_valid && index == first_bad && same_generation && frame.commit_size != 0;
    if ((whole || damaged_commit) && frame.commit_size != 0) ++result.dropped_commits;
    // A damaged frame still stores the checksum its writer computed, so the
    // frame after it can be checked against that.
    chained = same_generation;
    previous = frame.stored;
  }

  if (result.dropped_commits == 0) return result;
  result.first_bad_frame = first_bad + 1;
  const std::string where = header_valid ? "at frame " + std::to_string(first_bad + 1) + " of " +
                                               std::to_string(result.frames)
                                         : "in its header";
  const std::string kept = plural(result.kept_commits, "commit", "commits");
  if (result.dropped_commits >= 2) {
    // SQLite starts a commit only after the one before it returned, synced:
    // every dropped commit but the last was on disk, and acknowledged.
    result.outcome = WalInspection::Outcome::damaged_middle;
    result.description =
        wal_path + ": the write-ahead log is damaged " + where + ": SQLite's recovery would keep " +
        kept + " and silently drop the " + std::to_string(result.dropped_commits) +
        " whole commits written after the damage, events acctlockd acknowledged. acctlockd leaves "
        "the database and its log as they are: restore both from a backup, or, to accept the "
        "loss, move the -wal file aside and start again";
  } else {
    result.outcome = WalInspection::Outcome::damaged_tail;
    result.description =
        wal_path + ": the write-ahead log is damaged " + where + ", in its last commit, which " +
        "SQLite's recovery drops (it keeps the " + kept + " before). A power loss in the middle "
        "of that commit leaves this, and then it was never acknowledged; if the host did not "
        "lose power, the events of that commit are lost";
  }
  return result;
}

}  // namespace acctlock
