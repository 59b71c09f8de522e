// Sort-of-CLEVR reference captions (data/soc_captions.h) re-checked against
// the scene geometry, the `soc-captions` writer, and the caption JSONL reader
// (both line forms, file:line errors).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "mmkit/data/caption_jsonl.h"
#include "mmkit/data/soc_captions.h"
#include "mmkit/eval/caption_metrics.h"
#include "mmkit/image/image.h"
#include "mmkit/text/caption_vocab.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::data;

namespace {

std::string np(const SocObject& o) {
  std::string c = kSocColors[o.color];
  return std::string(c == "orange" ? "an " : "a ") + c + (o.square ? " square" : " circle");
}

// Every place phrase an object may get (thirds of the image).
std::set<std::string> places(const SocObject& o) {
  int v = o.cy < 25 ? 0 : o.cy < 50 ? 1 : 2, h = o.cx < 25 ? 0 : o.cx < 50 ? 1 : 2;
  const char* vert[3] = {"top", "middle", "bottom"};
  const char* horiz[3] = {"left", "center", "right"};
  if (v == 1 && h == 1) return {"in the center", "in the middle"};
  if (v == 1) return {std::string("on the ") + horiz[h]};
  if (h == 1) return {std::string("at the ") + vert[v]};
  std::string c = std::string(vert[v]) + " " + horiz[h];
  return {"at the " + c, "in the " + c + " corner"};
}

// "p1 , p2 , ... and p6" -> parts (after an optional "lead :").
std::vector<std::string> parts(std::string s) {
  size_t colon = s.find(" : ");
  if (colon != std::string::npos) s = s.substr(colon + 3);
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t a = s.find(" , ", start), b = s.find(" and ", start);
    size_t e = std::min(a, b);
    out.push_back(s.substr(start, e == std::string::npos ? std::string::npos : e - start));
    if (e == std::string::npos) break;
    start = e + (e == a ? 3 : 5);
  }
  return out;
}

const SocObject* find(const SocScene& s, const std::string& part) {
  for (auto& o : s.objects)
    if (part.rfind(np(o), 0) == 0) return &o;
  return nullptr;
}

}  // namespace

TEST(SocCaptions, EveryReferenceNamesExactlyTheSceneObjects) {
  std::set<std::string> firsts;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SocScene s = soc_generate_scene(seed);
    auto refs = soc_captions(s, seed, 5);
    ASSERT_EQ(refs.size(), 5u);
    EXPECT_EQ(std::set<std::string>(refs.begin(), refs.end()).size(), 5u) << "references must differ";
    std::vector<SceneObject> truth = soc_scene_objects(s);
    for (auto& r : refs) {
      ObjectF1 f = object_f1({metric_tokens(r)}, {truth});
      EXPECT_EQ(f.true_positives, 6) << r;
      EXPECT_EQ(f.mentioned, 6) << r;
      firsts.insert(metric_tokens(r)[0]);
    }
  }
  EXPECT_GE(firsts.size(), 4u) << "styles should start differently";
}

TEST(SocCaptions, PlacesAndRelativePositionsMatchTheGeometry) {
  int positional = 0, chains = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SocScene s = soc_generate_scene(seed);
    for (auto& r : soc_captions(s, seed, 6)) {
      auto ps = parts(r);
      if (ps.size() != 6) continue;  // listing styles with a lead phrase
      const SocObject* prev = nullptr;
      bool all_placed = true, all_relative = true;
      for (size_t k = 0; k < ps.size(); ++k) {
        const SocObject* o = find(s, ps[k]);
        if (!o) {
          all_placed = all_relative = false;
          break;
        }
        std::string rest = ps[k].size() > np(*o).size() ? ps[k].substr(np(*o).size() + 1) : "";
        all_placed &= places(*o).count(rest) > 0;
        if (k == 0) {
          all_relative &= places(*o).count(rest) > 0;
        } else {
          int dx = o->cx - prev->cx, dy = o->cy - prev->cy;
          std::string want = std::abs(dx) >= std::abs(dy) ? (dx > 0 ? "to its right" : "to its left")
                                                          : (dy > 0 ? "below it" : "above it");
          all_relative &= rest == want;
        }
        prev = o;
      }
      positional += all_placed;
      chains += all_relative && !all_placed;
    }
  }
  EXPECT_EQ(positional, 300);  // one "positions" reference per scene when all 6 styles are drawn
  EXPECT_EQ(chains, 300);
}

TEST(SocCaptions, DeterministicBySeedAndSmallVocabulary) {
  SocScene s = soc_generate_scene(42);
  EXPECT_EQ(soc_captions(s, 42), soc_captions(s, 42));
  EXPECT_NE(soc_captions(s, 42), soc_captions(s, 43));
  std::vector<std::string> all;
  size_t longest = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    SocScene sc = soc_generate_scene(seed);
    for (auto& r : soc_captions(sc, seed, 6)) {
      all.push_back(r);
      longest = std::max(longest, text::CaptionVocab::split_words(r).size());
    }
  }
  auto v = text::CaptionVocab::build(all);
  EXPECT_LT(v.size(), 64);
  EXPECT_LE(longest, 56u);  // fits a decoder with 64 positions (BOS + words + EOS)
  EXPECT_THROW(soc_captions(s, 1, 0), Error);
  EXPECT_THROW(soc_captions(s, 1, 7), Error);
}

TEST(SocCaptions, WriterOutputReadsBack) {
  std::string dir = test::make_temp_dir("soccap");
  SocCaptionOptions o;
  o.out_dir = dir;
  o.train_images = 6;
  o.test_images = 3;
  o.captions_per_image = 4;
  write_soc_captions(o);
  auto train = read_caption_jsonl(dir + "/train.jsonl");
  auto test = read_caption_jsonl(dir + "/test.jsonl");
  ASSERT_EQ(train.size(), 6u);
  ASSERT_EQ(test.size(), 3u);
  std::set<std::string> keys;
  auto key = [](const CaptionExample& e) {
    std::string k;
    for (auto& ob : e.objects) k += ob.shape + std::to_string(ob.x) + "," + std::to_string(ob.y) + ";";
    return k;
  };
  for (auto& e : train) {
    EXPECT_EQ(e.captions.size(), 4u);
    EXPECT_EQ(e.objects.size(), 6u);
    Image im = decode_image_file(e.image);
    EXPECT_EQ(im.width, 75);
    EXPECT_EQ(im.height, 75);
    keys.insert(key(e));
  }
  for (auto& e : test) EXPECT_EQ(keys.count(key(e)), 0u) << "a test scene repeats a training scene";
  std::system(("rm -rf " + dir).c_str());
}

TEST(CaptionJsonl, BothLineFormsMergePerImage) {
  std::string dir = test::make_temp_dir("capjsonl");
  std::ofstream(dir + "/d.jsonl") << R"({"image": "a.png", "caption": "one"})" "\n\n"
                                  << R"({"image": "b.png", "captions": ["x", "y"]})" "\n"
                                  << R"({"image": "a.png", "caption": "two", "objects": [{"color": "red", "shape": "circle"}]})" "\n"
                                  << R"({"image": "/abs/c.png", "captions": ["z"]})" "\n";
  auto ex = read_caption_jsonl(dir + "/d.jsonl");
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].image, dir + "/a.png");
  EXPECT_EQ(ex[0].captions, (std::vector<std::string>{"one", "two"}));
  ASSERT_EQ(ex[0].objects.size(), 1u);
  EXPECT_EQ(ex[0].objects[0].color, "red");
  EXPECT_EQ(ex[1].captions.size(), 2u);
  EXPECT_EQ(ex[2].image, "/abs/c.png");
  std::system(("rm -rf " + dir).c_str());
}

TEST(CaptionJsonl, BadLinesNameFileAndLine) {
  std::string dir = test::make_temp_dir("capjsonl_bad");
  const std::pair<const char*, const char*> cases[] = {
      {"{\"image\": \"a.png\", \"caption\": \"ok\"}\n{not json", "d.jsonl:2: invalid JSON"},
      {"{\"caption\": \"x\"}", "d.jsonl:1: missing field 'image'"},
      {"{\"image\": \"a.png\"}", "d.jsonl:1: expected exactly one of 'captions'"},
      {"{\"image\": \"a.png\", \"caption\": \"x\", \"captions\": [\"y\"]}", "expected exactly one of"},
      {"{\"image\": \"a.png\", \"captions\": []}", "d.jsonl:1: field 'captions' is empty"},
      {"{\"image\": \"a.png\", \"captions\": [3]}", "must be an array of strings"},
      {"{\"image\": \"a.png\", \"caption\": \"   \"}", "a caption is empty"},
      {"{\"image\": \"\", \"caption\": \"x\"}", "field 'image' must be a non-empty string"},
      {"[1, 2]", "d.jsonl:1: expected a JSON object"},
      {"{\"image\": \"a.png\", \"caption\": \"x\", \"objects\": [{\"color\": \"red\"}]}", "non-empty string 'shape'"},
      {"", "has no captions"},
  };
  for (auto& [text, want] : cases) {
    std::ofstream(dir + "/d.jsonl") << text;
    try {
      read_caption_jsonl(dir + "/d.jsonl");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what() << "\nwanted: " << want;
    }
  }
  EXPECT_THROW(read_caption_jsonl(dir + "/missing.jsonl"), Error);
  std::system(("rm -rf " + dir).c_str());
}
