// The live index on its own (mmkit/index/live_index.h): changes survive a
// reopen, a torn last log record is dropped with a warning while the records
// before it stay, damage elsewhere is refused, a crash inside compaction
// loses nothing, a second process is locked out, filtered search equals a
// brute-force oracle written independently of the filter code, the filter
// language names what is wrong, and near-duplicate groups are the connected
// components of the pairs above the threshold.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "mmkit/core/rng.h"
#include "mmkit/image/jpeg_encode.h"
#include "mmkit/index/image_fingerprint.h"
#include "mmkit/index/live_index.h"
#include "mmkit/index/metadata_filter.h"
#include "mmkit/index/record_file.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::index;
using json = nlohmann::json;

namespace {

constexpr int64_t D = 32;  // serve_clip_config's embed_dim

std::vector<float> unit_vector(uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<size_t>(D));
  double n = 0;
  for (auto& x : v) x = r.uniform() * 2 - 1, n += double(x) * x;
  for (auto& x : v) x = float(x / std::sqrt(n));
  return v;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void write_file(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

struct Fixture {
  std::string dir, model;
  std::unique_ptr<ClipRunner> runner;
  explicit Fixture(const std::string& tag) {
    dir = test::make_temp_dir(tag);
    model = test::write_tiny_clip(dir);
    runner = std::make_unique<ClipRunner>(ClipRunner::open(model));
  }
  std::unique_ptr<LiveIndex> create(LiveIndex::Options o = {}) {
    return LiveIndex::create(dir + "/live", *runner, model, o);
  }
  std::unique_ptr<LiveIndex> open(LiveIndex::Options o = {}) { return LiveIndex::open(dir + "/live", o); }
};

std::vector<std::string> all_ids(const LiveIndex& li) {
  std::vector<std::string> out;
  for (auto& h : li.search(unit_vector(99).data(), 1 << 20, MetadataFilter(), -2)) out.push_back(h.id);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(LiveIndex, ChangesSurviveAReopenAndCompaction) {
  Fixture fx("live_reopen");
  std::map<std::string, json> want;
  {
    auto li = fx.create();
    EXPECT_EQ(li->dim(), D);
    for (int i = 0; i < 30; ++i) {
      const std::string id = "item-" + std::to_string(i);
      li->add({id, {{"i", i}}, 10, 20, "", {}}, unit_vector(uint64_t(i)).data());
      want[id] = {{"i", i}};
    }
    for (int i = 0; i < 30; i += 3) {
      li->remove("item-" + std::to_string(i));
      want.erase("item-" + std::to_string(i));
    }
    li->update("item-1", json{{"i", 100}}, nullptr);
    want["item-1"] = {{"i", 100}};
    li->update("item-2", std::nullopt, unit_vector(1000).data(), {"", {}, 7, 8, "png", {}});
    EXPECT_EQ(li->stats().wal_records, 30 + 10 + 2);
  }
  auto check = [&](const LiveIndex& li) {
    EXPECT_EQ(li.stats().count, int64_t(want.size()));
    for (auto& [id, m] : want) {
      auto it = li.get(id);
      ASSERT_TRUE(it) << id;
      EXPECT_EQ(it->metadata, m) << id;
    }
    EXPECT_FALSE(li.get("item-0"));
    auto it2 = li.get("item-2");
    EXPECT_EQ(it2->width, 7);
    EXPECT_EQ(it2->thumb_png, "png");
    // item-2's new embedding is what it is found by.
    auto hits = li.search(unit_vector(1000).data(), 1, MetadataFilter(), -1);
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].id, "item-2");
    EXPECT_NEAR(hits[0].score, 1.0, 1e-5);
  };
  {
    auto li = fx.open();
    EXPECT_TRUE(li->warnings().empty());
    check(*li);
    li->compact();
    EXPECT_EQ(li->stats().wal_records, 0);
    check(*li);
  }
  auto li = fx.open();
  check(*li);
  EXPECT_EQ(li->stats().wal_records, 0);
}

TEST(LiveIndex, ATornLastRecordIsDroppedWithAWarningAndTheRestKept) {
  Fixture fx("live_torn");
  const std::string wal = fx.dir + "/live/live.wal";
  std::string full;
  {
    auto li = fx.create();
    for (int i = 0; i < 5; ++i) li->add({"a" + std::to_string(i), {}, 1, 1, "", {}}, unit_vector(uint64_t(i)).data());
  }
  full = read_file(wal);
  {
    auto li = fx.open();
    li->remove("a4");
  }
  const std::string with_remove = read_file(wal);
  // Cut inside the last record (as a kill in the middle of write() would), at several places:
  // the removal is lost (it was never acknowledged), the adds before it stay.
  ASSERT_GT(with_remove.size(), full.size());
  for (size_t cut : {full.size() + 1, full.size() + 7, with_remove.size() - 1}) {
    write_file(wal, with_remove.substr(0, cut));
    auto li = fx.open();
    ASSERT_EQ(li->warnings().size(), 1u) << "cut at " << cut;
    EXPECT_NE(li->warnings()[0].find("torn last record"), std::string::npos) << li->warnings()[0];
    EXPECT_EQ(all_ids(*li), (std::vector<std::string>{"a0", "a1", "a2", "a3", "a4"})) << "cut at " << cut;
    // The torn bytes were cut off: a new change lands after the good records, and reads back.
    li->add({"b", {}, 1, 1, "", {}}, unit_vector(50).data());
    li.reset();
    auto again = fx.open();
    EXPECT_TRUE(again->warnings().empty());
    EXPECT_EQ(again->stats().count, 6);
    again->remove("b");
  }
  // A flipped byte in the last record: its checksum fails; dropped the same way.
  std::string bad = with_remove;
  bad[bad.size() - 3] ^= 0x5a;
  write_file(wal, bad);
  {
    auto li = fx.open();
    EXPECT_EQ(li->warnings().size(), 1u);
    EXPECT_EQ(li->stats().count, 5);
  }
  // A flipped byte in an earlier record is damage, not a torn write: refused, naming the place.
  bad = with_remove;
  bad[full.size() - 20] ^= 0x5a;
  write_file(wal, bad);
  const std::string err = test::error_of([&] { fx.open(); });
  EXPECT_NE(err.find("damaged at byte"), std::string::npos) << err;
  EXPECT_NE(err.find("followed by more data"), std::string::npos) << err;
}

TEST(LiveIndex, ACrashInsideCompactionLosesNothingAndDuplicatesNothing) {
  Fixture fx("live_compact_crash");
  const std::string wal = fx.dir + "/live/live.wal";
  {
    auto li = fx.create();
    for (int i = 0; i < 8; ++i) li->add({"c" + std::to_string(i), {{"i", i}}, 1, 1, "", {}}, unit_vector(uint64_t(i)).data());
    li->remove("c3");
  }
  const std::string old_wal = read_file(wal);
  {
    auto li = fx.open();
    li->compact();
  }
  // The new snapshot is in place but the log was not yet emptied (killed between the two).
  write_file(wal, old_wal);
  auto li = fx.open();
  EXPECT_TRUE(li->warnings().empty());
  EXPECT_EQ(all_ids(*li), (std::vector<std::string>{"c0", "c1", "c2", "c4", "c5", "c6", "c7"}));
  li->add({"c3", {}, 1, 1, "", {}}, unit_vector(3).data());  // sequence numbers continue after the snapshot's
  li.reset();
  EXPECT_EQ(fx.open()->stats().count, 8);
}

TEST(LiveIndex, ASecondOpenIsRefusedWhileTheFirstHoldsTheIndex) {
  Fixture fx("live_lock");
  auto li = fx.create();
  const std::string err = test::error_of([&] { fx.open(); });
  EXPECT_NE(err.find("open in another process"), std::string::npos) << err;
  li.reset();
  EXPECT_NO_THROW(fx.open());
}

TEST(LiveIndex, IdsAndMetadataAreChecked) {
  Fixture fx("live_checks");
  auto li = fx.create();
  const auto e = unit_vector(1);
  li->add({"x", {}, 1, 1, "", {}}, e.data());
  EXPECT_THROW(li->add({"x", {}, 1, 1, "", {}}, e.data()), DuplicateItemId);
  EXPECT_THROW(li->remove("nope"), UnknownItemId);
  EXPECT_THROW(li->update("nope", json::object(), nullptr), UnknownItemId);
  EXPECT_NE(test::error_of([&] { li->add({"a/b", {}, 1, 1, "", {}}, e.data()); }).find("'/' is not allowed"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { li->add({"", {}, 1, 1, "", {}}, e.data()); }).find("id: empty"), std::string::npos);
  EXPECT_NE(test::error_of([&] { li->add({"y", json::array(), 1, 1, "", {}}, e.data()); }).find("expected a JSON object"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { li->add({"y", {{"$x", 1}}, 1, 1, "", {}}, e.data()); }).find("starts with '$'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { li->add({"y", {{"a.b", 1}}, 1, 1, "", {}}, e.data()); }).find("contains '.'"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { li->add({"y", {{"s", std::string(20000, 'x')}}, 1, 1, "", {}}, e.data()); }).find("limit"),
            std::string::npos);
  EXPECT_EQ(li->stats().count, 1);  // nothing refused reached the log
  EXPECT_EQ(li->stats().wal_records, 1);
}

// Metadata of item i, and an oracle for each filter below written as plain C++.
json meta_of(int i) {
  json m = {{"year", 2000 + i % 25}, {"tag", std::vector<std::string>{"cat", "dog", "car", "tree"}[size_t(i % 4)]},
            {"rating", (i * 37 % 100) / 10.0}, {"place", {{"city", i % 3 ? "Oslo" : "Lima"}}}};
  if (i % 5 == 0) m["tags"] = {"a", i % 2 ? "b" : "c"};
  if (i % 7 == 0) m.erase("tag");
  return m;
}

TEST(LiveIndex, FilteredSearchIsTheTrueTopKAmongMatchingItems) {
  Fixture fx("live_filter");
  auto li = fx.create(LiveIndex::Options{0});
  const int N = 500;  // each add is an fsync: ~5 ms here
  std::vector<std::vector<float>> emb(N);
  for (int i = 0; i < N; ++i) {
    emb[size_t(i)] = unit_vector(uint64_t(i) + 7);
    li->add({"i" + std::to_string(i), meta_of(i), 1, 1, "", {}}, emb[size_t(i)].data());
  }
  struct Case {
    const char* filter;
    std::function<bool(int)> want;
  };
  const std::vector<Case> cases = {
      {R"({})", [](int) { return true; }},
      {R"({"tag": "cat"})", [](int i) { return i % 7 != 0 && i % 4 == 0; }},
      {R"({"year": {"$gte": 2010, "$lt": 2015}})", [](int i) { return 2000 + i % 25 >= 2010 && 2000 + i % 25 < 2015; }},
      {R"({"rating": {"$gt": 8.5}})", [](int i) { return (i * 37 % 100) / 10.0 > 8.5; }},
      {R"({"tag": {"$in": ["dog", "car"]}, "place.city": "Lima"})",
       [](int i) { return i % 7 != 0 && (i % 4 == 1 || i % 4 == 2) && i % 3 == 0; }},
      {R"({"tag": {"$nin": ["dog", "car"]}})", [](int i) { return i % 7 == 0 || i % 4 == 0 || i % 4 == 3; }},
      {R"({"tags": "b"})", [](int i) { return i % 5 == 0 && i % 2 == 1; }},
      {R"({"tag": {"$exists": false}})", [](int i) { return i % 7 == 0; }},
      {R"({"$or": [{"year": 2003}, {"tag": {"$ne": "cat"}, "rating": {"$lte": 0.5}}]})",
       [](int i) { return 2000 + i % 25 == 2003 || (!(i % 7 != 0 && i % 4 == 0) && (i * 37 % 100) / 10.0 <= 0.5); }},
      {R"({"$not": {"year": {"$lt": 2024}}})", [](int i) { return 2000 + i % 25 >= 2024; }},
      {R"({"year": "2003"})", [](int) { return false; }},  // a string never equals a number
  };
  for (const Case& c : cases) {
    const MetadataFilter f = MetadataFilter::parse(json::parse(c.filter));
    for (uint64_t qs : {1u, 2u, 3u}) {
      const std::vector<float> q = unit_vector(100000 + qs);
      for (float min_score : {-1.0f, 0.1f}) {
        std::vector<std::pair<float, std::string>> oracle;
        for (int i = 0; i < N; ++i) {
          if (!c.want(i)) continue;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += double(q[size_t(d)]) * emb[size_t(i)][size_t(d)];
          if (s >= min_score) oracle.push_back({float(s), "i" + std::to_string(i)});
        }
        std::sort(oracle.begin(), oracle.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
        const size_t k = 20;
        auto hits = li->search(q.data(), int(k), f, min_score);
        ASSERT_EQ(hits.size(), std::min(k, oracle.size())) << c.filter;
        for (size_t j = 0; j < hits.size(); ++j) {
          // Scores from two summation orders: compare the ids, unless two scores are within rounding.
          EXPECT_NEAR(hits[j].score, oracle[j].first, 1e-5) << c.filter << " rank " << j;
          if (j + 1 < oracle.size() && std::fabs(oracle[j].first - oracle[j + 1].first) > 1e-5 &&
              (j == 0 || std::fabs(oracle[j].first - oracle[j - 1].first) > 1e-5)) {
            EXPECT_EQ(hits[j].id, oracle[j].second) << c.filter << " rank " << j;
          }
          const int i = std::stoi(hits[j].id.substr(1));
          EXPECT_TRUE(c.want(i)) << c.filter << " returned " << hits[j].id << " " << hits[j].metadata.dump();
        }
      }
    }
  }
}

TEST(MetadataFilter, MalformedFiltersAreRefusedNamingThePlace) {
  const std::vector<std::pair<const char*, const char*>> bad = {
      {R"([1, 2])", "filter: expected an object, got an array"},
      {R"({"year": {"$gte": [1]}})", "filter.year.$gte: expected a number or a string, got an array"},
      {R"({"year": {"$between": [1, 2]}})", "filter.year.$between: unknown operator '$between'"},
      {R"({"$nor": []})", "filter.$nor: unknown operator"},
      {R"({"tag": {"$in": "cat"}})", "filter.tag.$in: expected an array of values, got a string"},
      {R"({"tag": {"$in": [{"a": 1}]}})", "filter.tag.$in[0]: expected a string"},
      {R"({"$or": []})", "filter.$or: expected a non-empty array"},
      {R"({"$or": [{"a": 1}, 5]})", "filter.$or[1]: expected an object, got a number"},
      {R"({"a": {}})", "filter.a: an empty object of operators"},
      {R"({"a": [1, 2]})", "filter.a: expected a string, number, boolean, null or an object of operators, got an array"},
      {R"({"a..b": 1})", "empty part in the field name 'a..b'"},
      {R"({"a": {"$exists": 1}})", "filter.a.$exists: expected true or false"},
      {R"({"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"a": 1}}}}}}}}}})",
       "nested deeper than 8 levels"},
  };
  for (auto& [text, want] : bad) {
    const std::string err = test::error_of([&] { MetadataFilter::parse(json::parse(text)); });
    EXPECT_NE(err.find(want), std::string::npos) << text << " -> " << err;
  }
  json many = json::object();
  for (int i = 0; i < 300; ++i) many["f" + std::to_string(i)] = i;
  EXPECT_NE(test::error_of([&] { MetadataFilter::parse(many); }).find("more than 256 terms"), std::string::npos);
}

TEST(LiveIndex, DuplicateGroupsAreTheComponentsOfPairsAboveTheThreshold) {
  Fixture fx("live_dups");
  auto li = fx.create();
  // Fingerprints built around base vectors: three groups (a chain a0-a1-a2 where a0 and a2 are
  // further apart than the threshold but joined through a1; exact copies c0, c1), singletons,
  // and an item without a fingerprint (never in a group).
  const size_t F = size_t(kFingerprintDim);
  auto fp = [&](uint64_t seed) {
    Rng r(seed);
    std::vector<float> v(F);
    double n = 0;
    for (auto& x : v) x = r.uniform() * 2 - 1, n += double(x) * x;
    for (auto& x : v) x = float(x / std::sqrt(n));
    return v;
  };
  auto mix = [&](const std::vector<float>& a, const std::vector<float>& b, float t) {
    std::vector<float> v(F);
    double n = 0;
    for (size_t d = 0; d < F; ++d) v[d] = a[d] * (1 - t) + b[d] * t, n += double(v[d]) * v[d];
    for (auto& x : v) x = float(x / std::sqrt(n));
    return v;
  };
  auto cos = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t d = 0; d < F; ++d) s += double(a[d]) * b[d];
    return s;
  };
  const auto A = fp(1), B = fp(2), C = fp(3), e = unit_vector(1);
  const auto a1 = mix(A, B, 0.12f), a2 = mix(A, B, 0.24f);
  li->add({"a0", {{"g", 1}}, 1, 1, "", A}, e.data());
  li->add({"a1", {{"g", 1}}, 1, 1, "", a1}, e.data());
  li->add({"a2", {{"g", 1}}, 1, 1, "", a2}, e.data());
  li->add({"c0", {{"g", 2}}, 1, 1, "", C}, e.data());
  li->add({"c1", {{"g", 2}}, 1, 1, "", C}, e.data());
  li->add({"nofp", {{"g", 2}}, 1, 1, "", {}}, e.data());
  for (int i = 10; i < 30; ++i) li->add({"s" + std::to_string(i), {{"g", 3}}, 1, 1, "", fp(uint64_t(i))}, e.data());
  const double t = std::min(cos(A, a1), cos(a1, a2)) - 0.001;
  ASSERT_LT(cos(A, a2), t);  // a0-a2 below: joined only through a1
  auto g = li->duplicate_groups(float(t), MetadataFilter());
  EXPECT_EQ(g, (std::vector<std::vector<std::string>>{{"a0", "a1", "a2"}, {"c0", "c1"}}));
  g = li->duplicate_groups(float(t), MetadataFilter::parse({{"g", 2}}));
  EXPECT_EQ(g, (std::vector<std::vector<std::string>>{{"c0", "c1"}}));
  g = li->duplicate_groups(0.99999f, MetadataFilter());  // exact copies only
  EXPECT_EQ(g, (std::vector<std::vector<std::string>>{{"c0", "c1"}}));
  EXPECT_THROW(li->add({"bad", {}, 1, 1, "", std::vector<float>(5)}, e.data()), Error);
}

TEST(ImageFingerprint, IgnoresSizeAndJpegNoiseButNotContent) {
  const Image a = test::shape_image(1, 64), b = test::shape_image(2, 64);
  auto cos = [](const std::vector<float>& x, const std::vector<float>& y) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += double(x[i]) * y[i];
    return s;
  };
  const auto fa = image_fingerprint(a);
  ASSERT_EQ(fa.size(), size_t(kFingerprintDim));
  EXPECT_NEAR(cos(fa, fa), 1.0, 1e-5);
  const std::vector<uint8_t> jpg = encode_jpeg(a, 50);
  EXPECT_GT(cos(fa, image_fingerprint(decode_image_memory(jpg.data(), jpg.size(), "a.jpg"))), 0.95);
  EXPECT_GT(cos(fa, image_fingerprint(resize_bilinear(a, 40, 40))), 0.95);
  EXPECT_GT(cos(fa, image_fingerprint(resize_bilinear(a, 150, 150))), 0.95);
  EXPECT_LT(cos(fa, image_fingerprint(b)), 0.8);
  // A flat image has nothing to compare: a zero fingerprint, cosine 0 with anything.
  Image flat(8, 8, 3);
  for (auto& p : flat.pixels) p = 90;
  for (float v : image_fingerprint(flat)) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(image_fingerprint(to_gray(a)).size(), size_t(kFingerprintDim));  // gray works too
}

TEST(RecordFile, AHeaderCutShortReadsAsAnEmptyLog) {
  const std::string dir = test::make_temp_dir("record_file");
  write_file(dir + "/w", "MMKW");
  RecordRead r = read_records(dir + "/w", "MMKWAL1\n", true);
  EXPECT_TRUE(r.records.empty());
  EXPECT_FALSE(r.warning.empty());
  write_file(dir + "/x", "NOTAWAL\n");
  EXPECT_NE(test::error_of([&] { read_records(dir + "/x", "MMKWAL1\n", true); }).find("not a file of this kind"),
            std::string::npos);
}
