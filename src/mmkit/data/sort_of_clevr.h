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
// Their RGB values as rendered: (255,0,0) (0,255,0) (0,0,255) (255,156,0)
// (128,128,128) (255,255,0), on a white background.
extern const uint8_t kSocRgb[kSocObjects][3];
// Geometry (pixel (x, y) covers [x, x+1) x [y, y+1)): a square covers pixels
// cx-5 <= x < cx+5, cy-5 <= y < cy+5; a circle the pixels whose centre lies
// within 5 of the point (cx, cy). Both stay inside that 10x10 box, and
// centres lie in [5, 70], so objects never leave the image. Boxes of two
// objects are at least kSocMinGap pixels apart (no overlaps, none touching).
constexpr int kSocMinGap = 2;
// Relational answers are never near-ties: in every scene, for every object,
// the closest and the second-closest other object differ in centre distance
// by at least this many pixels, and so do the furthest and second-furthest
// (scenes that break this are redrawn).
constexpr double kSocDistanceMargin = 2.0;
// "left" iff cx < 37.5 (the image centre), "top" iff cy < 37.5; centres are
// integers, so there are no ties.

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
// Question wording (X = a colour name):
//   shape       "What is the shape of the X object?"                      circle | square
//   horizontal  "Is the X object on the left or on the right?"            left | right
//   vertical    "Is the X object at the top or at the bottom?"            top | bottom
//   closest     "What is the shape of the object closest to the X object?"   circle | square
//   furthest    "What is the shape of the object furthest from the X object?" circle | square
//   count       "How many objects have the same shape as the X object?"   1..6 (counts X itself)
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
