#include "mmkit/data/sort_of_clevr.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/util/progress.h"
#include "mmkit/util/file_util.h"

namespace mmkit::data {

const char* const kSocColors[kSocObjects] = {"red", "green", "blue", "orange", "gray", "yellow"};
const uint8_t kSocRgb[kSocObjects][3] = {{255, 0, 0},   {0, 255, 0},     {0, 0, 255},
                                         {255, 156, 0}, {128, 128, 128}, {255, 255, 0}};

namespace {

constexpr int kHalf = kSocObjectSize / 2;                  // 5
constexpr int kMinCentre = kHalf;                          // 5
constexpr int kMaxCentre = kSocImageSize - kHalf;          // 70
constexpr int kMaxAttempts = 100000;                       // scene redraws before giving up

// Sub-stream tags so scenes and questions of one seed are independent draws.
constexpr uint64_t kSceneStream = 0x5C3E0001, kQuestionStream = 0x5C3E0002;

double dist(const SocObject& a, const SocObject& b) {
  return std::hypot(double(a.cx - b.cx), double(a.cy - b.cy));
}

// Closest and furthest must be unambiguous for every object (see header).
bool relations_unambiguous(const SocScene& s) {
  for (int i = 0; i < kSocObjects; ++i) {
    std::vector<double> d;
    for (int j = 0; j < kSocObjects; ++j)
      if (j != i) d.push_back(dist(s.objects[size_t(i)], s.objects[size_t(j)]));
    std::sort(d.begin(), d.end());
    if (d[1] - d[0] < kSocDistanceMargin) return false;
    if (d[d.size() - 1] - d[d.size() - 2] < kSocDistanceMargin) return false;
  }
  return true;
}

int closest_index(const SocScene& s, int i, bool furthest) {
  int best = -1;
  double bd = 0;
  for (int j = 0; j < kSocObjects; ++j) {
    if (j == i) continue;
    double d = dist(s.objects[size_t(i)], s.objects[size_t(j)]);
    if (best < 0 || (furthest ? d > bd : d < bd)) best = j, bd = d;
  }
  return best;
}

const char* shape_name(bool square) { return square ? "square" : "circle"; }

void make_dir(const std::string& d) {
  if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST)
    fail("cannot create directory ", d, ": ", std::strerror(errno));
  struct stat st {};
  if (::stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(d, " exists and is not a directory");
}

// Identity of a scene for the train/test disjointness check.
std::string scene_key(const SocScene& s) {
  std::string k;
  for (auto& o : s.objects)
    k += std::to_string(o.cx) + "," + std::to_string(o.cy) + (o.square ? "s" : "c") + ";";
  return k;
}

}  // namespace

SocScene soc_generate_scene(uint64_t seed) {
  Rng rng = Rng::derive(seed, kSceneStream);
  const int span = kMaxCentre - kMinCentre + 1;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    SocScene s;
    bool placed_all = true;
    for (int c = 0; c < kSocObjects && placed_all; ++c) {
      SocObject o;
      o.color = c;
      o.square = rng.bernoulli(0.5f);
      bool placed = false;
      // Rejection sampling of the centre: boxes kSocMinGap apart from all earlier objects.
      for (int t = 0; t < 1000 && !placed; ++t) {
        o.cx = kMinCentre + int(rng.randint(span));
        o.cy = kMinCentre + int(rng.randint(span));
        placed = true;
        for (auto& p : s.objects)
          if (std::max(std::abs(p.cx - o.cx), std::abs(p.cy - o.cy)) < kSocObjectSize + kSocMinGap)
            placed = false;
      }
      placed_all = placed;
      s.objects.push_back(o);
    }
    if (placed_all && relations_unambiguous(s)) return s;
  }
  fail("Sort-of-CLEVR: no valid scene after ", kMaxAttempts, " attempts for seed ", seed);
}

Image soc_render(const SocScene& scene) {
  Image img(kSocImageSize, kSocImageSize, 3);
  std::fill(img.pixels.begin(), img.pixels.end(), uint8_t(255));
  for (const auto& o : scene.objects) {
    MMKIT_CHECK(o.color >= 0 && o.color < kSocObjects, "Sort-of-CLEVR: colour index ", o.color,
                " out of range");
    for (int y = o.cy - kHalf; y < o.cy + kHalf; ++y) {
      for (int x = o.cx - kHalf; x < o.cx + kHalf; ++x) {
        if (x < 0 || y < 0 || x >= kSocImageSize || y >= kSocImageSize) continue;
        if (!o.square) {
          double dx = x + 0.5 - o.cx, dy = y + 0.5 - o.cy;
          if (dx * dx + dy * dy > double(kHalf) * kHalf) continue;
        }
        for (int ch = 0; ch < 3; ++ch) img.at(x, y, ch) = kSocRgb[o.color][ch];
      }
    }
  }
  return img;
}

std::vector<SocQuestion> soc_questions(const SocScene& scene, uint64_t seed) {
  MMKIT_CHECK(int(scene.objects.size()) == kSocObjects, "Sort-of-CLEVR: a scene needs ", kSocObjects,
              " objects, got ", scene.objects.size());
  Rng rng = Rng::derive(seed, kQuestionStream);
  std::vector<SocQuestion> qs;
  auto obj = [&](int c) -> const SocObject& { return scene.objects[size_t(c)]; };
  for (int i = 0; i < 20; ++i) {
    const bool rel = i >= 10;
    const int c = int(rng.randint(kSocObjects));
    const int kind = int(rng.randint(3));
    const std::string X = kSocColors[c];
    SocQuestion q;
    q.relational = rel;
    if (!rel && kind == 0) {
      q.type = "shape";
      q.question = "What is the shape of the " + X + " object?";
      q.answer = shape_name(obj(c).square);
    } else if (!rel && kind == 1) {
      q.type = "horizontal";
      q.question = "Is the " + X + " object on the left or on the right?";
      q.answer = 2 * obj(c).cx < kSocImageSize ? "left" : "right";
    } else if (!rel) {
      q.type = "vertical";
      q.question = "Is the " + X + " object at the top or at the bottom?";
      q.answer = 2 * obj(c).cy < kSocImageSize ? "top" : "bottom";
    } else if (kind == 0) {
      q.type = "closest";
      q.question = "What is the shape of the object closest to the " + X + " object?";
      q.answer = shape_name(obj(closest_index(scene, c, false)).square);
    } else if (kind == 1) {
      q.type = "furthest";
      q.question = "What is the shape of the object furthest from the " + X + " object?";
      q.answer = shape_name(obj(closest_index(scene, c, true)).square);
    } else {
      q.type = "count";
      q.question = "How many objects have the same shape as the " + X + " object?";
      int n = 0;
      for (auto& o : scene.objects) n += o.square == obj(c).square;
      q.answer = std::to_string(n);
    }
    qs.push_back(std::move(q));
  }
  return qs;
}

void write_sort_of_clevr(const SortOfClevrOptions& o) {
  MMKIT_CHECK(!o.out_dir.empty(), "sort-of-clevr: an output directory is required");
  MMKIT_CHECK(o.train_images >= 0 && o.test_images >= 0, "sort-of-clevr: image counts must be >= 0, got train ",
              o.train_images, ", test ", o.test_images);
  MMKIT_CHECK(o.train_images + o.test_images > 0, "sort-of-clevr: nothing to generate (0 images)");
  make_dir(o.out_dir);
  make_dir(o.out_dir + "/images");

  std::string scenes_jsonl;
  std::set<std::string> train_keys;
  uint64_t next_id = 0;  // scene i draws from Rng::derive(o.seed, id): distinct ids, distinct streams
  ProgressOptions po;
  po.unit = "img/s";
  Progress p("sort-of-clevr", o.train_images + o.test_images, stderr, po);
  int64_t done = 0;
  for (int split = 0; split < 2; ++split) {
    const bool train = split == 0;
    const char* name = train ? "train" : "test";
    const int64_t n = train ? o.train_images : o.test_images;
    std::string jsonl;
    for (int64_t i = 0; i < n; ++i) {
      SocScene scene;
      uint64_t scene_seed;
      // The held-out split never repeats a training scene (a redraw is
      // astronomically rare, but the guarantee should not rest on chance).
      do {
        scene_seed = mix64(o.seed * 0x9E3779B97F4A7C15ull + next_id++);
        scene = soc_generate_scene(scene_seed);
      } while (!train && train_keys.count(scene_key(scene)));
      if (train) train_keys.insert(scene_key(scene));
      char file[64];
      std::snprintf(file, sizeof file, "images/%s_%05lld.png", name, (long long)i);
      write_png(o.out_dir + "/" + file, soc_render(scene));
      for (auto& q : soc_questions(scene, scene_seed)) {
        nlohmann::json j = {{"image", file},       {"question", q.question}, {"answers", {q.answer}},
                            {"type", q.type}, {"relational", q.relational}};
        jsonl += j.dump() + "\n";
      }
      nlohmann::json objs = nlohmann::json::array();
      for (auto& ob : scene.objects)
        objs.push_back({{"color", kSocColors[ob.color]}, {"shape", shape_name(ob.square)},
                        {"x", ob.cx}, {"y", ob.cy}});
      scenes_jsonl += nlohmann::json{{"image", file}, {"split", name}, {"seed", scene_seed}, {"objects", objs}}.dump() + "\n";
      p.update(++done);
    }
    write_text_atomic(o.out_dir + "/" + name + ".jsonl", jsonl);
  }
  write_text_atomic(o.out_dir + "/scenes.jsonl", scenes_jsonl);
  p.finish();
}

}  // namespace mmkit::data
