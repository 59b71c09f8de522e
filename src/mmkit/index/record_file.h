// Files of checksummed records: the live index's write-ahead log and its
// snapshot (live_index.h) are both a magic line followed by frames
//
//   u32 payload length | u32 CRC-32 (zlib) of the payload | payload bytes      (little-endian)
//
// so a reader can tell a complete record from a torn one. A write-ahead log is
// appended to and fsynced per record; a crash (SIGKILL, power loss) can leave a
// last frame that is short or whose checksum fails: read_records() with
// torn_tail_ok drops it with a warning, keeps every record before it, and
// reports where the good bytes end so the caller can truncate there before it
// appends again. A bad frame that is followed by more bytes is not a torn
// write but damage, and is refused naming the offset. A snapshot is written
// whole to a temporary name, fsynced and renamed (write_records_atomic), so it
// is never torn: any bad frame in it is an error.
//
//   std::string f = frame_record(payload);                        // 8 + payload.size() bytes
//   RecordRead r = read_records("dir/live.wal", "MMKWAL1\n", true);
//   for (auto& p : r.records) apply(p);  if (!r.warning.empty()) log(r.warning);
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmkit::index {

inline constexpr size_t kMaxRecordBytes = size_t(1) << 30;  // larger frames are damage, not records

std::string frame_record(const std::string& payload);

struct RecordRead {
  std::vector<std::string> records;  // payloads, in file order
  uint64_t good_bytes = 0;           // magic + complete records: where the next append belongs
  std::string warning;               // non-empty when a torn last record was dropped
};

// Reads `path`, which must start with `magic`. A missing file is an error.
RecordRead read_records(const std::string& path, const std::string& magic, bool torn_tail_ok);

// Writes magic + frames to "<path>.tmp", fsyncs it, renames it over `path` and
// fsyncs the directory, so `path` is always the old or the new file, whole.
void write_records_atomic(const std::string& path, const std::string& magic, const std::vector<std::string>& payloads);

// fsync of a directory: makes a rename or a new file in it durable.
void fsync_dir(const std::string& dir);

}  // namespace mmkit::index
