// A live image index: items (a caller-given id, JSON metadata, a normalised
// embedding, an optional PNG thumbnail) added, updated and removed one at a
// time, durable once a call returns, searched exactly (every matching row is
// scored, so a filtered top-k is the true top-k among the matching items).
//
//   auto li = LiveIndex::create("photos.live", runner, "clip.safetensors");  // or LiveIndex::open(dir)
//   li->add({"img-1", {{"year", 2024}}, 640, 480, thumb_png}, emb.data());   // emb: [dim], normalised
//   auto hits = li->search(q.data(), 10, MetadataFilter::parse(filter), /*min_score=*/0.2f);
//   li->remove("img-1");
//
// Folder layout:
//   live.snapshot   "MMKSNAP1\n" + checksummed records (record_file.h): an info record
//                   {"version", "kind": "live", "dim", "model", "model_config", "model_probe", "seq"},
//                   then one item record per item. Replaced whole (temp + fsync + rename) by compact().
//   live.wal        "MMKWAL1\n" + one record per change since the snapshot, each with a sequence number.
//   lock            flock()ed while a process has the index open: a second writer is refused.
// Durability: a change is appended to live.wal and fdatasync()ed before add/update/remove returns
// (so before the server answers 2xx). Concurrent writers share fsyncs (group commit: one thread
// syncs everything written so far while the others wait for it), and a change is visible to
// searches from its append on, possibly a few ms before it is acknowledged; open() loads the snapshot and replays the log's records with
// a sequence number above the snapshot's. A crash mid-append leaves a torn last record, which
// open() drops with a warning (warnings()) and cuts off; records before it are kept. A crash inside
// compact() leaves either the old snapshot and the whole log, or the new snapshot and a log whose
// records it already holds (skipped by their sequence numbers).
//
// Item record payload (little-endian): u8 op (1 add, 2 put = full replacement, 3 remove) | u64 seq |
// u32 n | n bytes of JSON {"id", "metadata", "width", "height"} | u32 d | d float32 | u32 t | t bytes of PNG |
// u32 f | f float32 (the image fingerprint).
// Thread-safe: searches share a lock, changes take it alone (one fsync at a time).
#pragma once
#include <cstdint>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/index/metadata_filter.h"
#include "mmkit/infer/clip_runner.h"

namespace mmkit::index {

// An id the index does not hold (HTTP 404) / an id it already holds on add (HTTP 409).
struct UnknownItemId : Error {
  using Error::Error;
};
struct DuplicateItemId : Error {
  using Error::Error;
};
// The change could not be written to or synced in the log (full disk, I/O error): not acknowledged
// (HTTP 503). After a failed sync no later change is accepted until the index is reopened.
struct StorageError : Error {
  using Error::Error;
};

// Near-duplicate groups join pairs whose image fingerprints (image_fingerprint.h) have cosine >= this
// by default: measured on generated copies, re-encodes and resizes, duplicates >= 0.98 and
// different images <= 0.79 (docs/LIVE_INDEX.md, "Near-duplicates").
inline constexpr float kDefaultDuplicateThreshold = 0.90f;

// Item ids: 1..128 bytes of [A-Za-z0-9._:@~-], so they go into URLs as they are. Throws mmkit::Error.
inline constexpr size_t kMaxItemIdBytes = 128;
void check_item_id(const std::string& id);

struct LiveItem {
  std::string id;
  nlohmann::json metadata = nlohmann::json::object();
  int width = 0, height = 0;  // of the original image
  std::string thumb_png;      // may be empty
  std::vector<float> fingerprint;  // image_fingerprint() of the image, [kFingerprintDim]; empty: no near-duplicate search
};

struct LiveHit {
  std::string id;
  float score = 0;  // cosine similarity
  nlohmann::json metadata;
  int width = 0, height = 0;
  bool has_thumb = false;
};

struct LiveStats {
  int64_t count = 0, dim = 0;
  int64_t wal_records = 0;  // changes since the last compaction
  uint64_t wal_bytes = 0, snapshot_bytes = 0, seq = 0;
  int64_t compactions = 0;  // by this process
};

class LiveIndex {
 public:
  struct Options {
    int64_t compact_every = 10000;  // compact() after this many log records (0: only when asked)
  };
  // A new, empty index in `dir` (created if missing; refused if it already holds one) for the
  // model `runner` (its probe embedding is recorded, as build_index does).
  static std::unique_ptr<LiveIndex> create(const std::string& dir, ClipRunner& runner, const std::string& model_path,
                                           Options opt);
  // The same from a model description {"dim", "model", "model_config", "model_probe"} (benchmarks
  // that store vectors of no loaded model give just {"dim"}).
  static std::unique_ptr<LiveIndex> create(const std::string& dir, const nlohmann::json& model_info, Options opt);
  static std::unique_ptr<LiveIndex> open(const std::string& dir, Options opt);
  static bool exists(const std::string& dir);  // dir holds live.snapshot
  ~LiveIndex();

  // emb: [dim] normalised. Throw DuplicateItemId / UnknownItemId, or mmkit::Error for a bad id or metadata.
  void add(const LiveItem& item, const float* emb);
  // Replaces what is given: metadata (when set), image (emb + size + thumbnail + fingerprint, when
  // emb is set; `image`'s id and metadata are not used).
  void update(const std::string& id, const std::optional<nlohmann::json>& metadata, const float* emb,
              const LiveItem& image = {});
  void remove(const std::string& id);
  std::optional<LiveItem> get(const std::string& id) const;

  // Up to k items matching `filter` with score >= min_score, best first (ties: smaller id first).
  std::vector<LiveHit> search(const float* q, int k, const MetadataFilter& filter, float min_score) const;
  // Groups (>= 2 items) of the matching items that have fingerprints, joined by pairs whose
  // fingerprints have cosine >= threshold (connected components), each sorted by id, groups
  // sorted by their first id.
  std::vector<std::vector<std::string>> duplicate_groups(float threshold, const MetadataFilter& filter) const;
  // Writes every item into a new snapshot and empties the log.
  void compact();

  LiveStats stats() const;
  const nlohmann::json& info() const { return info_; }
  int64_t dim() const { return dim_; }
  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& warnings() const { return warnings_; }  // from open(): torn records dropped

 private:
  LiveIndex() = default;
  void load();
  void apply(const std::string& payload, bool from_snapshot);
  void put(LiveItem item, const float* emb);  // insert or replace in memory
  void erase(const std::string& id);
  // Appends to the log (not yet synced; caller holds mu_); returns the log's running byte count
  // at the record's end, for wait_durable.
  uint64_t append(uint8_t op, const LiveItem& item, const float* emb);
  void wait_durable(uint64_t end);  // group commit: returns once the log is synced up to `end`
  void compact_locked();

  std::string dir_;
  Options opt_;
  nlohmann::json info_;
  int64_t dim_ = 0;
  std::vector<LiveItem> items_;
  std::vector<float> emb_;  // [items_.size(), dim_], row i = items_[i]
  std::unordered_map<std::string, size_t> row_of_;
  uint64_t seq_ = 0;
  int64_t wal_records_ = 0, compactions_ = 0;
  uint64_t wal_bytes_ = 0, snapshot_bytes_ = 0;
  int wal_fd_ = -1, lock_fd_ = -1;
  std::vector<std::string> warnings_;
  mutable std::shared_mutex mu_;
  // Group commit (wait_durable): bytes appended and bytes known synced since open, both only growing.
  std::mutex sync_mu_;
  std::condition_variable synced_cv_;
  uint64_t written_total_ = 0, synced_total_ = 0;
  bool syncing_ = false;
  std::string sync_error_;  // set when an fdatasync failed: no later change is accepted
};

}  // namespace mmkit::index
