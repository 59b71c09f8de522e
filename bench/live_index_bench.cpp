// Live index benchmark (docs/LIVE_INDEX.md, docs/BENCHMARKS.md "Live index"). Not a test: it
// measures time.
//
//   build/live_index_bench [--n 10000] [--dim 512] [--queries 200] [--dir /tmp/x]
//       adds with an fsync each, reopening (log replay), filtered and unfiltered top-10
//       queries at several selectivities (min / median / max ms), compaction, reopening
//       the snapshot, near-duplicate groups over all items.
//   build/live_index_bench --duplicates --model M [--originals 200] [--size 96] [--seed 2]
//                          [--fingerprint-stats | --centered]
//       precision and recall of near-duplicate groups (image fingerprints) over a sweep of
//       thresholds on the generated set of bench/near_duplicate_set.h, after the cosine
//       statistics of its duplicate and non-duplicate pairs: of model M's embeddings (raw, or
//       --centered: the set's mean removed), or with --fingerprint-stats of the fingerprints.
//       How the default threshold was chosen.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/index/image_fingerprint.h"
#include "mmkit/index/live_index.h"
#include "mmkit/infer/clip_runner.h"
#include "near_duplicate_set.h"

using namespace mmkit;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string arg(int argc, char** argv, const char* name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}
bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

std::vector<float> unit_vector(Rng& r, int64_t d) {
  std::vector<float> v(static_cast<size_t>(d));
  double n = 0;
  for (auto& x : v) x = r.uniform() * 2 - 1, n += double(x) * x;
  for (auto& x : v) x = float(x / std::sqrt(n));
  return v;
}

// Metadata of item i: a year (25 values), a tag (4, one in 7 items without), a rating 0..9.9,
// a nested city (1 in 3 "Lima"), a tag list on every fifth item.
json meta_of(int i) {
  json m = {{"year", 2000 + i % 25}, {"tag", std::vector<std::string>{"cat", "dog", "car", "tree"}[size_t(i % 4)]},
            {"rating", (i * 37 % 100) / 10.0}, {"place", {{"city", i % 3 ? "Oslo" : "Lima"}}}};
  if (i % 5 == 0) m["tags"] = {"a", i % 2 ? "b" : "c"};
  if (i % 7 == 0) m.erase("tag");
  return m;
}

void stats_line(const char* what, std::vector<double> t, size_t matched) {
  std::sort(t.begin(), t.end());
  std::printf("| %s | %zu | %.2f | %.2f | %.2f |\n", what, matched, t.front(), t[t.size() / 2], t.back());
}

int run_search_bench(int argc, char** argv) {
  const int n = std::stoi(arg(argc, argv, "--n", "10000"));
  const int64_t dim = std::stoll(arg(argc, argv, "--dim", "512"));
  const int queries = std::stoi(arg(argc, argv, "--queries", "200"));
  const std::string dir = arg(argc, argv, "--dir", "/tmp/mmkit_live_bench_" + std::to_string(::getpid()));
  std::string cmd = "rm -rf '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) return 1;
  Rng rng(1);
  std::printf("live index: %d items, %lld-d random unit vectors, metadata as in tests/test_live_index.cpp; %s\n", n,
              (long long)dim, dir.c_str());
  index::LiveIndex::Options o;
  o.compact_every = 0;
  {
    auto li = index::LiveIndex::create(dir, json{{"dim", dim}}, o);
    auto t0 = Clock::now();
    // Random fingerprints too, so that the near-duplicate pass below has the work of a real index.
    for (int i = 0; i < n; ++i)
      li->add({"item-" + std::to_string(i), meta_of(i), 96, 96, "", unit_vector(rng, index::kFingerprintDim)},
              unit_vector(rng, dim).data());
    const double ms = ms_since(t0);
    std::printf("adds (each fsynced before it returns): %.0f ms, %.0f adds/s, log %.1f MB\n", ms, n / ms * 1000,
                double(li->stats().wal_bytes) / 1e6);
  }
  auto t0 = Clock::now();
  auto li = index::LiveIndex::open(dir, o);
  std::printf("open, replaying %lld log records: %.0f ms\n", (long long)li->stats().wal_records, ms_since(t0));

  const std::vector<std::pair<const char*, const char*>> filters = {
      {"no filter", "{}"},
      {"equality (tag = cat)", R"({"tag": "cat"})"},
      {"range (2010 <= year < 2015)", R"({"year": {"$gte": 2010, "$lt": 2015}})"},
      {"set + nested (tag in {dog, car}, place.city = Lima)", R"({"tag": {"$in": ["dog", "car"]}, "place.city": "Lima"})"},
      {"$or of a value and a range", R"({"$or": [{"year": 2003}, {"rating": {"$gte": 9.5}}]})"},
      {"array field (tags contains b)", R"({"tags": "b"})"},
  };
  std::printf("\ntop-10 queries, %d each (ms):\n\n| filter | items matching | min | median | max |\n|---|---|---|---|---|\n",
              queries);
  std::vector<std::vector<float>> qs;
  for (int q = 0; q < queries; ++q) qs.push_back(unit_vector(rng, dim));
  for (auto& [name, text] : filters) {
    const index::MetadataFilter f = index::MetadataFilter::parse(json::parse(text));
    size_t matched = li->search(qs[0].data(), n, f, -2).size();
    std::vector<double> t;
    for (auto& q : qs) {
      auto t1 = Clock::now();
      auto hits = li->search(q.data(), 10, f, -2);
      t.push_back(ms_since(t1));
      if (hits.empty() && matched) std::printf("(no hits?)\n");
    }
    stats_line(name, t, matched);
  }
  t0 = Clock::now();
  li->compact();
  std::printf("\ncompaction into live.snapshot (%.1f MB): %.0f ms\n", double(li->stats().snapshot_bytes) / 1e6, ms_since(t0));
  li.reset();
  t0 = Clock::now();
  li = index::LiveIndex::open(dir, o);
  std::printf("open from the snapshot: %.0f ms\n", ms_since(t0));
  t0 = Clock::now();
  auto groups = li->duplicate_groups(index::kDefaultDuplicateThreshold, index::MetadataFilter());
  std::printf("near-duplicate groups over %d items at %.2f: %.0f ms (%zu groups)\n", n, index::kDefaultDuplicateThreshold,
              ms_since(t0), groups.size());
  li.reset();
  cmd = "rm -rf '" + dir + "'";
  return std::system(cmd.c_str()) == 0 ? 0 : 1;
}

int run_duplicates_bench(int argc, char** argv) {
  const std::string model = arg(argc, argv, "--model", "");
  if (model.empty()) {
    std::fprintf(stderr, "--duplicates needs --model\n");
    return 2;
  }
  const int originals = std::stoi(arg(argc, argv, "--originals", "200"));
  const int size = std::stoi(arg(argc, argv, "--size", "96"));
  const uint64_t seed = std::stoull(arg(argc, argv, "--seed", "2"));
  set_num_threads(0);
  ClipRunner r = ClipRunner::open(model);
  const std::string dir = "/tmp/mmkit_live_dups_" + std::to_string(::getpid());
  index::LiveIndex::Options o;
  o.compact_every = 0;
  auto li = index::LiveIndex::create(dir, json{{"dim", r.embed_dim()}}, o);
  std::map<std::string, int> origin;
  std::vector<std::vector<float>> embs;
  std::vector<int> origins;
  for (const neardup::Item& it : neardup::near_duplicate_set(originals, originals * 2 / 3, size, seed)) {
    Image im = decode_image_memory(it.bytes.data(), it.bytes.size(), it.id);
    Tensor e = r.embed_images({im}, true);
    li->add({it.id, json::object(), im.width, im.height, "", index::image_fingerprint(im)}, e.f32());
    origin[it.id] = it.origin;
    // Pair statistics of the CLIP embeddings, or with --fingerprint-stats of the fingerprints the
    // groups below are made from.
    if (flag(argc, argv, "--fingerprint-stats")) embs.push_back(index::image_fingerprint(im));
    else embs.emplace_back(e.f32(), e.f32() + e.numel());
    origins.push_back(it.origin);
  }
  // How far apart the two kinds of pairs are: the least similar duplicate pair and the most
  // similar pair of different originals, and their 1% / 99% quantiles.
  if (flag(argc, argv, "--centered")) {  // the same after removing the set's mean embedding
    std::vector<double> mean(embs[0].size(), 0.0);
    for (auto& e : embs)
      for (size_t d = 0; d < e.size(); ++d) mean[d] += e[d] / double(embs.size());
    for (auto& e : embs) {
      double n = 0;
      for (size_t d = 0; d < e.size(); ++d) e[d] = float(e[d] - mean[d]), n += double(e[d]) * e[d];
      for (auto& x : e) x = float(x / std::sqrt(n));
    }
  }
  std::vector<double> dup, other;
  for (size_t a = 0; a < embs.size(); ++a)
    for (size_t b = a + 1; b < embs.size(); ++b) {
      double c = 0;
      for (size_t d = 0; d < embs[a].size(); ++d) c += double(embs[a][d]) * embs[b][d];
      (origins[a] == origins[b] ? dup : other).push_back(c);
    }
  std::sort(dup.begin(), dup.end());
  std::sort(other.begin(), other.end());
  std::printf("cosine of duplicate pairs: min %.4f, 1%% %.4f, median %.4f; of different originals: median %.4f, 99%% %.4f, max %.4f\n",
              dup.front(), dup[dup.size() / 100], dup[dup.size() / 2], other[other.size() / 2], other[other.size() * 99 / 100],
              other.back());
  std::printf("near-duplicates: %s, %zu images from %d originals of %dx%d (seed %llu)\n\n| threshold | precision | recall | pairs right | pairs wrong | true pairs |\n|---|---|---|---|---|---|\n",
              model.c_str(), origin.size(), originals, size, size, (unsigned long long)seed);
  for (double t : {0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.97, 0.98, 0.99}) {
    const neardup::PairScore s = neardup::score_groups(li->duplicate_groups(float(t), index::MetadataFilter()), origin);
    std::printf("| %.3f | %.3f | %.3f | %lld | %lld | %lld |\n", t, s.precision, s.recall, (long long)s.right,
                (long long)s.wrong, (long long)s.truth);
  }
  li.reset();
  const std::string cmd = "rm -rf '" + dir + "'";
  return std::system(cmd.c_str()) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return flag(argc, argv, "--duplicates") ? run_duplicates_bench(argc, argv) : run_search_bench(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "live_index_bench: %s\n", e.what());
    return 1;
  }
}
