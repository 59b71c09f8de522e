#include "mmkit/index/live_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <queue>

#include "mmkit/index/embedding_index.h"
#include "mmkit/index/image_fingerprint.h"
#include "mmkit/index/record_file.h"
#include "mmkit/util/file_util.h"

namespace mmkit::index {

using json = nlohmann::json;

namespace {

const std::string kSnapMagic = "MMKSNAP1\n", kWalMagic = "MMKWAL1\n";
enum Op : uint8_t { INFO = 0, ADD = 1, PUT = 2, REMOVE = 3 };

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

// Reads the payload's fields in order; a field past the end is damage (the checksum passed, so
// the writer was another program or version).
struct Reader {
  const std::string& s;
  const std::string& where;
  size_t at = 0;
  void need(size_t n) const {
    MMKIT_CHECK(n <= s.size() - at, where, ": record ends early (", s.size(), " bytes)");
  }
  uint64_t uint(int bytes) {
    need(size_t(bytes));
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(s[at + size_t(i)])) << (8 * i);
    at += size_t(bytes);
    return v;
  }
  std::string bytes(size_t n) {
    need(n);
    std::string out = s.substr(at, n);
    at += n;
    return out;
  }
};

std::string encode(uint8_t op, uint64_t seq, const LiveItem& it, const float* emb, int64_t dim) {
  std::string p;
  p.push_back(char(op));
  put_u64(p, seq);
  json h = {{"id", it.id}};
  if (op != REMOVE) h.update({{"metadata", it.metadata}, {"width", it.width}, {"height", it.height}});
  const std::string hs = h.dump();
  put_u32(p, uint32_t(hs.size()));
  p += hs;
  const int64_t d = op == REMOVE ? 0 : dim;
  put_u32(p, uint32_t(d));
  p.append(reinterpret_cast<const char*>(emb), size_t(d) * 4);
  const std::string& t = op == REMOVE ? std::string() : it.thumb_png;
  put_u32(p, uint32_t(t.size()));
  p += t;
  const size_t f = op == REMOVE ? 0 : it.fingerprint.size();
  put_u32(p, uint32_t(f));
  p.append(reinterpret_cast<const char*>(it.fingerprint.data()), f * 4);
  return p;
}

float dot(const float* a, const float* b, int64_t n) {
  // Eight partial sums: lets the compiler vectorise without -ffast-math.
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float t = 0;
  for (; i < n; ++i) t += a[i] * b[i];
  return t + ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

uint64_t file_bytes(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

int take_lock(const std::string& dir) {
  const std::string p = dir + "/lock";
  int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MMKIT_CHECK(fd >= 0, "cannot open ", p, ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    fail("live index ", dir, " is open in another process (a running mmkit serve?); stop it or send the change to it");
  }
  return fd;
}

}  // namespace

void check_item_id(const std::string& id) {
  MMKIT_CHECK(!id.empty(), "id: empty");
  MMKIT_CHECK(id.size() <= kMaxItemIdBytes, "id: ", id.size(), " bytes, the limit is ", kMaxItemIdBytes);
  for (char c : id)
    if (!(std::isalnum(uint8_t(c)) || c == '.' || c == '_' || c == ':' || c == '@' || c == '~' || c == '-'))
      fail("id '", id.substr(0, 64), "': character '", (c >= 32 && c < 127) ? std::string(1, c) : std::string("\\x") + std::to_string(uint8_t(c)),
           "' is not allowed (letters, digits and . _ : @ ~ - only)");
}

bool LiveIndex::exists(const std::string& dir) { return path_exists(dir + "/live.snapshot"); }

LiveIndex::~LiveIndex() {
  if (wal_fd_ >= 0) ::close(wal_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::unique_ptr<LiveIndex> LiveIndex::create(const std::string& dir, ClipRunner& runner, const std::string& model_path,
                                             Options opt) {
  return create(dir,
                json{{"dim", runner.embed_dim()},
                     {"model", model_path},
                     {"model_config", json::parse(runner.config().to_json())},
                     {"model_probe", model_probe(runner)}},
                opt);
}

std::unique_ptr<LiveIndex> LiveIndex::create(const std::string& dir, const json& model_info, Options opt) {
  make_dirs(dir);
  MMKIT_CHECK(!exists(dir), dir, " already holds a live index");
  MMKIT_CHECK(!path_exists(dir + "/info.json"), dir, " holds an index made by mmkit index build; use another folder");
  const int lock = take_lock(dir);
  json info = model_info;
  info["version"] = 1;
  info["kind"] = "live";
  info["seq"] = 0;
  // The log first: a snapshot never exists without its log.
  write_records_atomic(dir + "/live.wal", kWalMagic, {});
  std::string p;
  p.push_back(char(INFO));
  p += info.dump();
  write_records_atomic(dir + "/live.snapshot", kSnapMagic, {p});
  ::close(lock);
  return open(dir, opt);
}

std::unique_ptr<LiveIndex> LiveIndex::open(const std::string& dir, Options opt) {
  MMKIT_CHECK(exists(dir), dir, " is not a live index (no live.snapshot); create one with mmkit index add --model M, "
              "or mmkit serve --live-index");
  auto x = std::unique_ptr<LiveIndex>(new LiveIndex());
  x->dir_ = dir;
  x->opt_ = opt;
  x->lock_fd_ = take_lock(dir);
  x->load();
  return x;
}

void LiveIndex::load() {
  const std::string snap = dir_ + "/live.snapshot", wal = dir_ + "/live.wal";
  RecordRead s = read_records(snap, kSnapMagic, /*torn_tail_ok=*/false);
  MMKIT_CHECK(!s.records.empty() && !s.records[0].empty() && uint8_t(s.records[0][0]) == INFO, snap,
              ": the first record is not the index's info");
  try {
    info_ = json::parse(s.records[0].substr(1));
    dim_ = info_.at("dim").get<int64_t>();
    seq_ = info_.at("seq").get<uint64_t>();
  } catch (const json::exception& e) {
    fail(snap, ": bad info record: ", e.what());
  }
  MMKIT_CHECK(dim_ > 0 && dim_ <= 65536, snap, ": dim ", dim_, " out of range");
  const uint64_t snap_seq = seq_;
  for (size_t i = 1; i < s.records.size(); ++i) apply(s.records[i], true);
  seq_ = snap_seq;
  snapshot_bytes_ = s.good_bytes;

  if (!path_exists(wal)) write_records_atomic(wal, kWalMagic, {});  // killed between the two files of create()
  RecordRead w = read_records(wal, kWalMagic, /*torn_tail_ok=*/true);
  if (!w.warning.empty()) {
    warnings_.push_back(w.warning);
    std::fprintf(stderr, "warning: %s\n", w.warning.c_str());
  }
  for (const std::string& r : w.records) apply(r, false);
  wal_records_ = int64_t(w.records.size());
  wal_fd_ = ::open(wal.c_str(), O_WRONLY | O_CLOEXEC);
  MMKIT_CHECK(wal_fd_ >= 0, "cannot open ", wal, " for appending: ", std::strerror(errno));
  if (w.good_bytes < kWalMagic.size()) {  // header torn: rewrite it
    MMKIT_CHECK(::ftruncate(wal_fd_, 0) == 0 && ::pwrite(wal_fd_, kWalMagic.data(), kWalMagic.size(), 0) ==
                                                    ssize_t(kWalMagic.size()),
                "cannot repair ", wal, ": ", std::strerror(errno));
    w.good_bytes = kWalMagic.size();
  }
  // Cut a torn tail off before appending after it.
  MMKIT_CHECK(::ftruncate(wal_fd_, off_t(w.good_bytes)) == 0 && ::fdatasync(wal_fd_) == 0, "cannot truncate ", wal,
              ": ", std::strerror(errno));
  MMKIT_CHECK(::lseek(wal_fd_, off_t(w.good_bytes), SEEK_SET) >= 0, "cannot seek in ", wal);
  wal_bytes_ = w.good_bytes;
}

void LiveIndex::apply(const std::string& payload, bool from_snapshot) {
  const std::string where = dir_ + (from_snapshot ? "/live.snapshot" : "/live.wal");
  Reader r{payload, where};
  const uint8_t op = uint8_t(r.uint(1));
  const uint64_t seq = r.uint(8);
  MMKIT_CHECK(op == ADD || op == PUT || op == REMOVE, where, ": unknown record type ", int(op));
  if (!from_snapshot && seq <= seq_) return;  // already in the snapshot (a crash inside compact())
  LiveItem it;
  std::vector<float> e;
  try {
    const json h = json::parse(r.bytes(size_t(r.uint(4))));
    it.id = h.at("id").get<std::string>();
    if (op != REMOVE) {
      it.metadata = h.at("metadata");
      it.width = h.at("width").get<int>();
      it.height = h.at("height").get<int>();
    }
  } catch (const json::exception& ex) {
    fail(where, ": bad record header: ", ex.what());
  }
  const uint64_t d = r.uint(4);
  MMKIT_CHECK(d == (op == REMOVE ? 0 : uint64_t(dim_)), where, ": record for '", it.id, "' has ", d,
              " embedding values, expected ", op == REMOVE ? 0 : dim_);
  e.resize(size_t(d));
  if (d) std::memcpy(e.data(), r.bytes(size_t(d) * 4).data(), size_t(d) * 4);
  it.thumb_png = r.bytes(size_t(r.uint(4)));
  const uint64_t f = r.uint(4);
  MMKIT_CHECK(f == 0 || f == uint64_t(kFingerprintDim), where, ": record for '", it.id, "' has a fingerprint of ", f,
              " values, expected ", kFingerprintDim);
  it.fingerprint.resize(size_t(f));
  if (f) std::memcpy(it.fingerprint.data(), r.bytes(size_t(f) * 4).data(), size_t(f) * 4);
  if (!from_snapshot) seq_ = seq;
  if (op == REMOVE) {
    MMKIT_CHECK(row_of_.count(it.id), where, ": removes '", it.id, "', which it does not hold");
    erase(it.id);
  } else {
    if (op == ADD) MMKIT_CHECK(!row_of_.count(it.id), where, ": adds '", it.id, "' twice");
    put(std::move(it), e.data());
  }
}

void LiveIndex::put(LiveItem item, const float* emb) {
  auto f = row_of_.find(item.id);
  size_t row;
  if (f != row_of_.end()) {
    row = f->second;
    items_[row] = std::move(item);
  } else {
    row = items_.size();
    row_of_[item.id] = row;
    items_.push_back(std::move(item));
    emb_.resize(items_.size() * size_t(dim_));
  }
  std::memcpy(emb_.data() + row * size_t(dim_), emb, size_t(dim_) * 4);
}

void LiveIndex::erase(const std::string& id) {
  const size_t row = row_of_.at(id), last = items_.size() - 1;
  if (row != last) {  // the last row moves into the hole: O(dim)
    items_[row] = std::move(items_[last]);
    std::memcpy(emb_.data() + row * size_t(dim_), emb_.data() + last * size_t(dim_), size_t(dim_) * 4);
    row_of_[items_[row].id] = row;
  }
  items_.pop_back();
  emb_.resize(items_.size() * size_t(dim_));
  row_of_.erase(id);
}

uint64_t LiveIndex::append(uint8_t op, const LiveItem& item, const float* emb) {
  {
    std::lock_guard<std::mutex> c(sync_mu_);
    if (!sync_error_.empty())
      throw StorageError("the live index's log could not be synced earlier (" + sync_error_ +
                         "); no change is accepted until the index is reopened");
  }
  const std::string fr = frame_record(encode(op, seq_ + 1, item, emb, dim_));
  size_t done = 0;
  while (done < fr.size()) {
    const ssize_t n = ::write(wal_fd_, fr.data() + done, fr.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += size_t(n);
  }
  if (done < fr.size()) {
    const int e = errno;
    // Not acknowledged: take the partial record back so the log stays well-formed.
    if (::ftruncate(wal_fd_, off_t(wal_bytes_)) == 0) ::lseek(wal_fd_, off_t(wal_bytes_), SEEK_SET);
    throw StorageError("cannot write the change to " + dir_ + "/live.wal: " + std::strerror(e ? e : EIO));
  }
  wal_bytes_ += fr.size();
  ++wal_records_;
  ++seq_;
  std::lock_guard<std::mutex> c(sync_mu_);
  written_total_ += fr.size();
  return written_total_;
}

void LiveIndex::wait_durable(uint64_t end) {
  std::unique_lock<std::mutex> c(sync_mu_);
  while (synced_total_ < end) {
    if (!sync_error_.empty()) throw StorageError("cannot sync " + dir_ + "/live.wal: " + sync_error_);
    if (syncing_) {  // another writer's fdatasync is running: it may cover this record too
      synced_cv_.wait(c);
      continue;
    }
    syncing_ = true;
    const uint64_t target = written_total_;  // every byte counted here is already written
    c.unlock();
    const int rc = ::fdatasync(wal_fd_);
    const int e = errno;
    c.lock();
    syncing_ = false;
    if (rc != 0) sync_error_ = std::strerror(e);  // after a failed fsync the kernel may have dropped pages
    else synced_total_ = std::max(synced_total_, target);
    synced_cv_.notify_all();
  }
}

void LiveIndex::add(const LiveItem& given, const float* emb) {
  LiveItem item = given;
  if (item.metadata.is_null()) item.metadata = json::object();  // no metadata
  check_item_id(item.id);
  check_metadata(item.metadata);
  MMKIT_CHECK(item.fingerprint.empty() || item.fingerprint.size() == size_t(kFingerprintDim), "fingerprint: ",
              item.fingerprint.size(), " values, expected ", kFingerprintDim);
  uint64_t end;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    if (row_of_.count(item.id)) throw DuplicateItemId("id '" + item.id + "' is already in the index (update it with PUT, or remove it first)");
    end = append(ADD, item, emb);
    put(item, emb);
    if (opt_.compact_every > 0 && wal_records_ >= opt_.compact_every) compact_locked();
  }
  wait_durable(end);
}

void LiveIndex::update(const std::string& id, const std::optional<json>& metadata, const float* emb,
                       const LiveItem& image) {
  check_item_id(id);
  if (metadata) check_metadata(*metadata);
  uint64_t end;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    auto f = row_of_.find(id);
    if (f == row_of_.end()) throw UnknownItemId("no item with id '" + id + "' in the index");
    LiveItem it = items_[f->second];
    if (metadata) it.metadata = *metadata;
    std::vector<float> e(emb_.begin() + std::ptrdiff_t(f->second * size_t(dim_)),
                         emb_.begin() + std::ptrdiff_t((f->second + 1) * size_t(dim_)));
    if (emb) {
      e.assign(emb, emb + dim_);
      it.width = image.width;
      it.height = image.height;
      it.thumb_png = image.thumb_png;
      it.fingerprint = image.fingerprint;
  }
  end = append(PUT, it, e.data());
  put(std::move(it), e.data());
  if (opt_.compact_every > 0 && wal_records_ >= opt_.compact_every) compact_locked();
  }
  wait_durable(end);
}

void LiveIndex::remove(const std::string& id) {
  check_item_id(id);
  uint64_t end;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    if (!row_of_.count(id)) throw UnknownItemId("no item with id '" + id + "' in the index");
    LiveItem it;
    it.id = id;
    end = append(REMOVE, it, nullptr);
    erase(id);
    if (opt_.compact_every > 0 && wal_records_ >= opt_.compact_every) compact_locked();
  }
  wait_durable(end);
}

std::optional<LiveItem> LiveIndex::get(const std::string& id) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  auto f = row_of_.find(id);
  if (f == row_of_.end()) return std::nullopt;
  return items_[f->second];
}

std::vector<LiveHit> LiveIndex::search(const float* q, int k, const MetadataFilter& filter, float min_score) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  const bool all = filter.empty();
  // The best k so far in a heap whose top is the worst of them (lower score, then larger id).
  auto better = [&](const std::pair<float, size_t>& a, const std::pair<float, size_t>& b) {
    return a.first != b.first ? a.first > b.first : items_[a.second].id < items_[b.second].id;
  };
  std::priority_queue<std::pair<float, size_t>, std::vector<std::pair<float, size_t>>, decltype(better)> heap(better);
  const size_t K = size_t(std::max(k, 0));
  for (size_t i = 0; i < items_.size() && K > 0; ++i) {
    if (!all && !filter.matches(items_[i].metadata)) continue;
    const float s = dot(q, emb_.data() + i * size_t(dim_), dim_);
    if (!(s >= min_score)) continue;
    if (heap.size() < K) {
      heap.push({s, i});
    } else if (better({s, i}, heap.top())) {
      heap.pop();
      heap.push({s, i});
    }
  }
  std::vector<LiveHit> out(heap.size());
  for (size_t j = heap.size(); j-- > 0; heap.pop()) {
    const LiveItem& it = items_[heap.top().second];
    out[j] = {it.id, heap.top().first, it.metadata, it.width, it.height, !it.thumb_png.empty()};
  }
  return out;
}

std::vector<std::vector<std::string>> LiveIndex::duplicate_groups(float threshold, const MetadataFilter& filter) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  std::vector<size_t> rows;
  for (size_t i = 0; i < items_.size(); ++i)
    if (!items_[i].fingerprint.empty() && (filter.empty() || filter.matches(items_[i].metadata))) rows.push_back(i);
  const size_t n = rows.size();
  if (n < 2) return {};
  const size_t F = size_t(kFingerprintDim);
  std::vector<float> x(n * F);
  for (size_t j = 0; j < n; ++j) std::memcpy(x.data() + j * F, items_[rows[j]].fingerprint.data(), F * 4);
  // All pairs above the threshold through FAISS's blocked inner products; its range search keeps
  // scores > radius, so the radius is the next float below the threshold (pairs >= threshold).
  faiss::IndexFlatIP flat(kFingerprintDim);
  flat.add(faiss::Index::idx_t(n), x.data());
  faiss::RangeSearchResult rs{faiss::Index::idx_t(n)};
  flat.range_search(faiss::Index::idx_t(n), x.data(), std::nextafter(threshold, -1.0f), &rs);
  std::vector<size_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<size_t(size_t)> root = [&](size_t a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  };
  for (size_t a = 0; a < n; ++a)
    for (size_t p = rs.lims[a]; p < rs.lims[a + 1]; ++p) {
      const size_t b = size_t(rs.labels[p]);
      if (b != a) parent[root(a)] = root(b);
    }
  std::unordered_map<size_t, std::vector<std::string>> by_root;
  for (size_t a = 0; a < n; ++a) by_root[root(a)].push_back(items_[rows[a]].id);
  std::vector<std::vector<std::string>> groups;
  for (auto& [r, g] : by_root)
    if (g.size() > 1) {
      std::sort(g.begin(), g.end());
      groups.push_back(std::move(g));
    }
  std::sort(groups.begin(), groups.end());
  return groups;
}

void LiveIndex::compact() {
  std::unique_lock<std::shared_mutex> l(mu_);
  compact_locked();
}

void LiveIndex::compact_locked() {
  std::vector<std::string> recs;
  recs.reserve(items_.size() + 1);
  json info = info_;
  info["seq"] = seq_;
  std::string p;
  p.push_back(char(INFO));
  p += info.dump();
  recs.push_back(std::move(p));
  for (size_t i = 0; i < items_.size(); ++i) recs.push_back(encode(ADD, 0, items_[i], emb_.data() + i * size_t(dim_), dim_));
  const std::string snap = dir_ + "/live.snapshot";
  write_records_atomic(snap, kSnapMagic, recs);  // from here the log's records are in the snapshot
  info_ = info;
  const std::string wal = dir_ + "/live.wal";
  MMKIT_CHECK(::ftruncate(wal_fd_, off_t(kWalMagic.size())) == 0 && ::fdatasync(wal_fd_) == 0 &&
                  ::lseek(wal_fd_, off_t(kWalMagic.size()), SEEK_SET) >= 0,
              "cannot empty ", wal, " after writing the snapshot: ", std::strerror(errno));
  wal_bytes_ = kWalMagic.size();
  wal_records_ = 0;
  snapshot_bytes_ = file_bytes(snap);
  ++compactions_;
  {  // every change appended so far is in the fsynced snapshot: durable, whatever the log's sync
    std::lock_guard<std::mutex> c(sync_mu_);
    synced_total_ = std::max(synced_total_, written_total_);
  }
  synced_cv_.notify_all();
}

LiveStats LiveIndex::stats() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return {int64_t(items_.size()), dim_, wal_records_, wal_bytes_, snapshot_bytes_, seq_, compactions_};
}

}  // namespace mmkit::index
