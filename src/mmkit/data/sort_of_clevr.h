// Sort-of-CLEVR (Santoro et al. 2017, "A simple neural network module for
// relational reasoning"): 75x75 scenes with 6 objects of distinct colours,
// each a circle or a square, and English questions about them.
//
//   auto scene = mmkit::data::soc_generate_scene(seed);       // deterministic by seed
//   mmkit::Image img = mmkit::data::soc_render(scene);        // 75x75 RGB
//   auto qs = mmkit::data::soc_questions(scene, seed);        // 10 non-relational + 10 relational
//
// Used by VQA (questions) and captioning (data/soc_captions.h). Colour index
// = position in kSocColors; scene.objects[i].color == i.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit::data {

constexpr int kSocImageSize = 75;
constexpr int kSocObjects = 6;
constexpr int kSocObjectSize = 10;  // square side / circle diameter in pixels
// red, green, blue, orange, gray, yellow
extern const char* const kSocColors[kSocObjects];

struct SocObject {
  int color = 0;        // index into kSocColors
  bool square = false;  // else circle
  int cx = 0, cy = 0;   // centre in pixels; y grows downwards ("top" = small y)
};

struct SocScene {
  std::vector<SocObject> objects;  // kSocObjects, objects[i].color == i, no overlaps
};

struct SocQuestion {
  std::string question;  // e.g. "What is the shape of the red object?"
  std::string answer;    // e.g. "circle", "left", "yes", "3"
  std::string type;      // "shape", "horizontal", "vertical", "closest", "furthest", "count"
  bool relational = false;
};

SocScene soc_generate_scene(uint64_t seed);
Image soc_render(const SocScene& scene);  // RGB, white background
// 10 non-relational (shape / left-right / top-bottom of a colour) and 10
// relational (shape of the closest / furthest object to a colour; how many
// objects share its shape) questions, deterministic by seed.
std::vector<SocQuestion> soc_questions(const SocScene& scene, uint64_t seed);

struct SortOfClevrOptions {
  std::string out_dir;
  int64_t train_images = 9000, test_images = 1000;  // 10,000 images by default
  uint64_t seed = 1;
};
// Writes OUT/images/{train,test}_NNNNN.png, OUT/train.jsonl and OUT/test.jsonl
// (one line per question: {"image": "images/...png", "question": ..., "answers": [...],
// "type": ..., "relational": bool}) and OUT/scenes.jsonl (object lists, for
// captions and inspection). Shows progress; files are written atomically.
void write_sort_of_clevr(const SortOfClevrOptions& o);

}  // namespace mmkit::data
