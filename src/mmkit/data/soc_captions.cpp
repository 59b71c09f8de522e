#include "mmkit/data/soc_captions.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <set>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/image/image.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::data {

namespace {

constexpr uint64_t kCaptionStream = 0x5C3E0C01;  // independent of the scene's own streams

const char* shape(const SocObject& o) { return o.square ? "square" : "circle"; }

std::string noun_phrase(const SocObject& o) {
  std::string c = kSocColors[o.color];
  return std::string(c[0] == 'o' ? "an " : "a ") + c + " " + shape(o);
}

int band(int v) { return v < 25 ? 0 : v < 50 ? 1 : 2; }

std::string place(const SocObject& o, Rng& rng) {
  static const char* vert[3] = {"top", "middle", "bottom"};
  static const char* horiz[3] = {"left", "center", "right"};
  const int v = band(o.cy), h = band(o.cx);
  if (v == 1 && h == 1) return rng.bernoulli(0.5f) ? "in the center" : "in the middle";
  if (v == 1) return std::string("on the ") + horiz[h];
  if (h == 1) return std::string("at the ") + vert[v];
  std::string corner = std::string(vert[v]) + " " + horiz[h];
  return rng.bernoulli(0.5f) ? "at the " + corner : "in the " + corner + " corner";
}

std::string relative(const SocObject& prev, const SocObject& cur) {
  const int dx = cur.cx - prev.cx, dy = cur.cy - prev.cy;
  if (std::abs(dx) >= std::abs(dy)) return dx > 0 ? "to its right" : "to its left";
  return dy > 0 ? "below it" : "above it";
}

// "p1 , p2 , ... and pn"
std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) s += i + 1 == parts.size() ? " and " : " , ";
    s += parts[i];
  }
  return s;
}

std::vector<int> shuffled(int n, Rng& rng) {
  std::vector<int> o(static_cast<size_t>(n));
  std::iota(o.begin(), o.end(), 0);
  for (int i = n - 1; i > 0; --i) std::swap(o[size_t(i)], o[size_t(rng.randint(i + 1))]);
  return o;
}

const char* number_word(int n) {
  static const char* w[7] = {"no", "one", "two", "three", "four", "five", "six"};
  return w[n];
}

std::string caption_in_style(const SocScene& s, int style, Rng& rng) {
  const auto& ob = s.objects;
  const int n = int(ob.size());
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::string> parts;
  switch (style) {
    case 0: {  // positions, reading order
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        int ba = band(ob[size_t(a)].cy), bb = band(ob[size_t(b)].cy);
        return ba != bb ? ba < bb : ob[size_t(a)].cx < ob[size_t(b)].cx;
      });
      for (int i : order) parts.push_back(noun_phrase(ob[size_t(i)]) + " " + place(ob[size_t(i)], rng));
      return join(parts);
    }
    case 1: {  // listing, palette order
      static const char* lead[3] = {"there is ", "the image shows ", "there are six objects : "};
      for (int i : order) parts.push_back(noun_phrase(ob[size_t(i)]));
      return lead[rng.randint(3)] + join(parts);
    }
    case 2: {  // sweep, left to right
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ob[size_t(a)].cx < ob[size_t(b)].cx; });
      for (int i : order) parts.push_back(noun_phrase(ob[size_t(i)]));
      return "from left to right : " + join(parts);
    }
    case 3: {  // chain of relative positions
      order = shuffled(n, rng);
      for (size_t k = 0; k < order.size(); ++k) {
        const SocObject& o = ob[size_t(order[k])];
        parts.push_back(noun_phrase(o) + " " + (k == 0 ? place(o, rng) : relative(ob[size_t(order[k - 1])], o)));
      }
      return join(parts);
    }
    case 4: {  // attributes
      order = shuffled(n, rng);
      for (int i : order)
        parts.push_back(std::string("the ") + kSocColors[ob[size_t(i)].color] + " object is a " + shape(ob[size_t(i)]));
      return join(parts);
    }
    default: {  // counts
      int squares = 0;
      for (auto& o : ob) squares += o.square;
      const int circles = n - squares;
      std::vector<std::string> counts;
      if (circles > 0) counts.push_back(std::string(number_word(circles)) + (circles == 1 ? " circle" : " circles"));
      if (squares > 0) counts.push_back(std::string(number_word(squares)) + (squares == 1 ? " square" : " squares"));
      order = shuffled(n, rng);
      for (int i : order) parts.push_back(noun_phrase(ob[size_t(i)]));
      return join(counts) + " : " + join(parts);
    }
  }
}

std::string scene_key(const SocScene& s) {
  std::string k;
  for (auto& o : s.objects) k += std::to_string(o.cx) + "," + std::to_string(o.cy) + (o.square ? "s;" : "c;");
  return k;
}

}  // namespace

std::vector<std::string> soc_captions(const SocScene& scene, uint64_t seed, int count) {
  MMKIT_CHECK(count >= 1 && count <= kSocCaptionStyles, "Sort-of-CLEVR captions: 1..", kSocCaptionStyles,
              " references per image, got ", count);
  MMKIT_CHECK(int(scene.objects.size()) == kSocObjects, "Sort-of-CLEVR captions: a scene has ", kSocObjects,
              " objects, got ", scene.objects.size());
  Rng rng = Rng::derive(seed, kCaptionStream);
  std::vector<int> styles = shuffled(kSocCaptionStyles, rng);
  std::vector<std::string> out;
  for (int k = 0; k < count; ++k) out.push_back(caption_in_style(scene, styles[size_t(k)], rng));
  return out;
}

std::vector<SceneObject> soc_scene_objects(const SocScene& scene) {
  std::vector<SceneObject> out;
  for (auto& o : scene.objects) out.push_back({kSocColors[o.color], shape(o), o.cx, o.cy});
  return out;
}

void write_soc_captions(const SocCaptionOptions& o) {
  MMKIT_CHECK(!o.out_dir.empty(), "soc-captions: an output directory is required (--out DIR)");
  MMKIT_CHECK(o.train_images >= 0 && o.test_images >= 0, "soc-captions: image counts must be >= 0, got train ",
              o.train_images, ", test ", o.test_images);
  MMKIT_CHECK(o.train_images + o.test_images > 0, "soc-captions: nothing to generate (0 images)");
  MMKIT_CHECK(o.captions_per_image >= 1 && o.captions_per_image <= kSocCaptionStyles,
              "soc-captions: --captions must be in 1..", kSocCaptionStyles, ", got ", o.captions_per_image);
  make_dirs(o.out_dir + "/images");
  std::set<std::string> train_keys;
  uint64_t next_id = 0;
  ProgressOptions po;
  po.unit = "img/s";
  Progress p("soc-captions", o.train_images + o.test_images, stderr, po);
  int64_t done = 0;
  for (int split = 0; split < 2; ++split) {
    const bool train = split == 0;
    const char* name = train ? "train" : "test";
    const int64_t n = train ? o.train_images : o.test_images;
    std::string jsonl;
    for (int64_t i = 0; i < n; ++i) {
      SocScene scene;
      uint64_t scene_seed;
      do {  // held-out scenes never repeat a training scene
        scene_seed = mix64(o.seed * 0x9E3779B97F4A7C15ull + next_id++);
        scene = soc_generate_scene(scene_seed);
      } while (!train && train_keys.count(scene_key(scene)));
      if (train) train_keys.insert(scene_key(scene));
      char file[64];
      std::snprintf(file, sizeof file, "images/%s_%05lld.png", name, (long long)i);
      write_png(o.out_dir + "/" + file, soc_render(scene));
      CaptionExample ex{file, soc_captions(scene, scene_seed, o.captions_per_image), soc_scene_objects(scene)};
      jsonl += caption_example_json(ex) + "\n";
      p.update(++done);
    }
    write_text_atomic(o.out_dir + "/" + name + ".jsonl", jsonl);
  }
  p.finish();
}

}  // namespace mmkit::data
