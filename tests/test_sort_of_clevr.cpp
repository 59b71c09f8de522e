// Sort-of-CLEVR generator: determinism, scene validity, rendering, and every
// answer re-derived here from the scene geometry by independent code (integer
// squared distances, parsing the English question), plus the on-disk layout.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "mmkit/core/error.h"
#include "mmkit/data/sort_of_clevr.h"
#include "mmkit/image/image.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::data;

namespace {

bool same_scene(const SocScene& a, const SocScene& b) {
  if (a.objects.size() != b.objects.size()) return false;
  for (size_t i = 0; i < a.objects.size(); ++i) {
    auto &p = a.objects[i], &q = b.objects[i];
    if (p.color != q.color || p.square != q.square || p.cx != q.cx || p.cy != q.cy) return false;
  }
  return true;
}

int color_of(const std::string& question) {
  int found = -1;
  for (int c = 0; c < kSocObjects; ++c)
    if (question.find(std::string(" ") + kSocColors[c] + " object") != std::string::npos) {
      EXPECT_EQ(found, -1) << "two colours in: " << question;
      found = c;
    }
  return found;
}

// The expected answer, computed from the scene with integer arithmetic only.
std::string expected_answer(const SocScene& s, const std::string& q) {
  const int c = color_of(q);
  if (c < 0) return "<no colour>";
  const SocObject& o = s.objects[size_t(c)];
  auto shape = [](const SocObject& x) { return std::string(x.square ? "square" : "circle"); };
  auto d2 = [&](const SocObject& x) { return (x.cx - o.cx) * (x.cx - o.cx) + (x.cy - o.cy) * (x.cy - o.cy); };
  if (q.rfind("What is the shape of the object closest", 0) == 0 ||
      q.rfind("What is the shape of the object furthest", 0) == 0) {
    const bool far = q.find("furthest") != std::string::npos;
    int best = -1;
    for (int j = 0; j < kSocObjects; ++j) {
      if (j == c) continue;
      if (best < 0 || (far ? d2(s.objects[size_t(j)]) > d2(s.objects[size_t(best)])
                           : d2(s.objects[size_t(j)]) < d2(s.objects[size_t(best)])))
        best = j;
    }
    return shape(s.objects[size_t(best)]);
  }
  if (q.rfind("What is the shape of the ", 0) == 0) return shape(o);
  if (q.find("left or on the right") != std::string::npos) return o.cx <= 37 ? "left" : "right";
  if (q.find("top or at the bottom") != std::string::npos) return o.cy <= 37 ? "top" : "bottom";
  if (q.rfind("How many objects have the same shape as", 0) == 0) {
    int n = 0;
    for (auto& x : s.objects) n += x.square == o.square;
    return std::to_string(n);
  }
  return "<unknown question>";
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace

TEST(SortOfClevr, DeterministicBySeed) {
  for (uint64_t seed : {0ull, 1ull, 12345ull}) {
    EXPECT_TRUE(same_scene(soc_generate_scene(seed), soc_generate_scene(seed)));
    auto a = soc_questions(soc_generate_scene(seed), seed), b = soc_questions(soc_generate_scene(seed), seed);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].question, b[i].question);
  }
  // Different seeds give different scenes (all 50 pairwise distinct).
  std::vector<SocScene> v;
  for (uint64_t s = 0; s < 50; ++s) v.push_back(soc_generate_scene(s));
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t j = i + 1; j < v.size(); ++j) EXPECT_FALSE(same_scene(v[i], v[j])) << i << " " << j;
}

TEST(SortOfClevr, ScenesAreValid) {
  int squares = 0, total = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    SocScene s = soc_generate_scene(seed);
    ASSERT_EQ(s.objects.size(), size_t(kSocObjects));
    std::set<int> colors;
    for (int i = 0; i < kSocObjects; ++i) {
      const auto& o = s.objects[size_t(i)];
      EXPECT_EQ(o.color, i);
      colors.insert(o.color);
      // The whole 10x10 box lies inside the image.
      EXPECT_GE(o.cx - kSocObjectSize / 2, 0);
      EXPECT_GE(o.cy - kSocObjectSize / 2, 0);
      EXPECT_LE(o.cx + kSocObjectSize / 2, kSocImageSize);
      EXPECT_LE(o.cy + kSocObjectSize / 2, kSocImageSize);
      squares += o.square;
      ++total;
      for (int j = 0; j < i; ++j) {
        const auto& p = s.objects[size_t(j)];
        bool apart = std::abs(o.cx - p.cx) >= kSocObjectSize + kSocMinGap ||
                     std::abs(o.cy - p.cy) >= kSocObjectSize + kSocMinGap;
        EXPECT_TRUE(apart) << "seed " << seed << ": objects " << i << " and " << j << " overlap";
      }
    }
    EXPECT_EQ(colors.size(), size_t(kSocObjects));
  }
  // Shapes are a fair coin: 1800 draws, expect ~900.
  EXPECT_GT(squares, total * 4 / 10);
  EXPECT_LT(squares, total * 6 / 10);
}

TEST(SortOfClevr, RenderedPixels) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SocScene s = soc_generate_scene(seed);
    Image im = soc_render(s);
    ASSERT_EQ(im.width, kSocImageSize);
    ASSERT_EQ(im.height, kSocImageSize);
    ASSERT_EQ(im.channels, 3);
    std::map<int, int> count;  // pixels per colour index, -1 = white
    for (int y = 0; y < im.height; ++y)
      for (int x = 0; x < im.width; ++x) {
        int which = -2;
        if (im.at(x, y, 0) == 255 && im.at(x, y, 1) == 255 && im.at(x, y, 2) == 255) which = -1;
        for (int c = 0; c < kSocObjects; ++c)
          if (im.at(x, y, 0) == kSocRgb[c][0] && im.at(x, y, 1) == kSocRgb[c][1] && im.at(x, y, 2) == kSocRgb[c][2])
            which = c;
        ASSERT_NE(which, -2) << "pixel (" << x << "," << y << ") has a colour of no object";
        count[which]++;
      }
    for (const auto& o : s.objects) {
      // The centre pixel has the object's colour.
      for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(im.at(o.cx, o.cy, ch), kSocRgb[o.color][ch]);
      // Corner of the box: coloured for squares, white for circles.
      const int x0 = o.cx - kSocObjectSize / 2, y0 = o.cy - kSocObjectSize / 2;
      EXPECT_EQ(im.at(x0, y0, 0) == kSocRgb[o.color][0] && im.at(x0, y0, 1) == kSocRgb[o.color][1] &&
                    im.at(x0, y0, 2) == kSocRgb[o.color][2],
                o.square)
          << "seed " << seed << " colour " << o.color;
      // Area: a full 10x10 square; a circle of radius 5 covers 80 pixel centres (counted
      // here by brute force with integers: (2x+1-2cx)^2 + (2y+1-2cy)^2 <= 100).
      int circle = 0;
      for (int y = -6; y < 6; ++y)
        for (int x = -6; x < 6; ++x) circle += (2 * x + 1) * (2 * x + 1) + (2 * y + 1) * (2 * y + 1) <= 100;
      EXPECT_EQ(count[o.color], o.square ? 100 : circle) << "seed " << seed << " colour " << o.color;
    }
  }
}

TEST(SortOfClevr, AnswersMatchGeometry) {
  std::map<std::string, int> per_type;
  std::map<std::string, std::set<std::string>> answers_per_type;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    SocScene s = soc_generate_scene(seed);
    auto qs = soc_questions(s, seed);
    ASSERT_EQ(qs.size(), 20u);
    int rel = 0;
    for (auto& q : qs) {
      rel += q.relational;
      EXPECT_EQ(q.answer, expected_answer(s, q.question)) << "seed " << seed << ": " << q.question;
      bool rel_type = q.type == "closest" || q.type == "furthest" || q.type == "count";
      EXPECT_EQ(q.relational, rel_type) << q.type;
      per_type[q.type]++;
      answers_per_type[q.type].insert(q.answer);
    }
    EXPECT_EQ(rel, 10);
  }
  EXPECT_EQ(per_type.size(), 6u);
  for (auto& [t, n] : per_type) EXPECT_GT(n, 8000 / 6 / 2) << t;  // each type is drawn often
  EXPECT_EQ(answers_per_type["shape"], (std::set<std::string>{"circle", "square"}));
  EXPECT_EQ(answers_per_type["horizontal"], (std::set<std::string>{"left", "right"}));
  EXPECT_EQ(answers_per_type["vertical"], (std::set<std::string>{"top", "bottom"}));
  EXPECT_EQ(answers_per_type["closest"], (std::set<std::string>{"circle", "square"}));
  EXPECT_GE(answers_per_type["count"].size(), 5u);
}

TEST(SortOfClevr, RelationsHaveAMargin) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SocScene s = soc_generate_scene(seed);
    for (auto& o : s.objects) {
      std::vector<double> d;
      for (auto& p : s.objects)
        if (&p != &o) d.push_back(std::hypot(p.cx - o.cx, p.cy - o.cy));
      std::sort(d.begin(), d.end());
      EXPECT_GE(d[1] - d[0], kSocDistanceMargin);
      EXPECT_GE(d[4] - d[3], kSocDistanceMargin);
    }
  }
}

TEST(SortOfClevr, WritesPngAndJsonlWithDisjointSplit) {
  std::string dir = test::make_temp_dir("soc"), dir2 = test::make_temp_dir("soc");
  SortOfClevrOptions o;
  o.out_dir = dir;
  o.train_images = 30;
  o.test_images = 12;
  o.seed = 7;
  write_sort_of_clevr(o);
  o.out_dir = dir2;
  write_sort_of_clevr(o);  // same seed: byte-identical output

  std::map<std::string, std::string> image_bytes;  // file -> bytes
  std::set<std::string> train_pixels;
  for (std::string split : {"train", "test"}) {
    std::string text = read_file(dir + "/" + split + ".jsonl");
    EXPECT_EQ(text, read_file(dir2 + "/" + split + ".jsonl"));
    std::istringstream in(text);
    std::string line;
    std::map<std::string, int> per_image;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      std::string img = j.at("image");
      EXPECT_EQ(img.rfind("images/" + split + "_", 0), 0u) << img;
      EXPECT_TRUE(j.at("question").is_string());
      ASSERT_TRUE(j.at("answers").is_array());
      EXPECT_EQ(j.at("answers").size(), 1u);
      EXPECT_TRUE(j.at("relational").is_boolean());
      EXPECT_TRUE(j.at("type").is_string());
      per_image[img]++;
    }
    EXPECT_EQ(per_image.size(), size_t(split == "train" ? 30 : 12));
    for (auto& [img, n] : per_image) {
      EXPECT_EQ(n, 20) << img;
      std::string bytes = read_file(dir + "/" + img);
      EXPECT_EQ(bytes, read_file(dir2 + "/" + img)) << img;
      Image im = decode_image_file(dir + "/" + img);
      EXPECT_EQ(im.width, 75);
      EXPECT_EQ(im.channels, 3);
      std::string px(im.pixels.begin(), im.pixels.end());
      if (split == "train") train_pixels.insert(px);
      else EXPECT_EQ(train_pixels.count(px), 0u) << img << " repeats a training image";
    }
  }
  // scenes.jsonl: one line per image; its object list reproduces the PNG.
  std::istringstream in(read_file(dir + "/scenes.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    SocScene s;
    for (auto& ob : j.at("objects")) {
      SocObject x;
      x.color = int(s.objects.size());
      EXPECT_EQ(ob.at("color").get<std::string>(), kSocColors[x.color]);
      x.square = ob.at("shape") == "square";
      x.cx = ob.at("x");
      x.cy = ob.at("y");
      s.objects.push_back(x);
    }
    EXPECT_EQ(soc_render(s).pixels, decode_image_file(dir + "/" + j.at("image").get<std::string>()).pixels);
    ++n;
  }
  EXPECT_EQ(n, 42);
  // A different seed gives different data.
  std::string dir3 = test::make_temp_dir("soc");
  o.out_dir = dir3;
  o.seed = 8;
  write_sort_of_clevr(o);
  EXPECT_NE(read_file(dir + "/train.jsonl"), read_file(dir3 + "/train.jsonl"));
  for (auto& d : {dir, dir2, dir3}) std::system(("rm -rf '" + d + "'").c_str());
}

TEST(SortOfClevr, BadOptionsFailClearly) {
  SortOfClevrOptions o;
  EXPECT_THROW(write_sort_of_clevr(o), Error);  // no directory
  o.out_dir = "/proc/definitely/not/writable";
  EXPECT_THROW(write_sort_of_clevr(o), Error);
  o.out_dir = "/tmp";
  o.train_images = -1;
  EXPECT_THROW(write_sort_of_clevr(o), Error);
}
