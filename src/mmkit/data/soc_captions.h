// Reference captions for Sort-of-CLEVR scenes (data/sort_of_clevr.h) and the
// `mmkit data soc-captions` data set.
//
//   auto scene = mmkit::data::soc_generate_scene(seed);
//   std::vector<std::string> refs = mmkit::data::soc_captions(scene, seed);   // 5 references
//
// Every reference names all six objects as "<colour> <shape>" (so the object
// F1 of eval/caption_metrics.h can be read off any of them) but in a
// different style, wording and object order, chosen by the seed:
//   positions   reading order (top band first, then left to right), each with its place:
//               "a red circle at the top left , a gray square at the top , ... and a blue circle at the bottom right"
//   listing     palette order: "there is a red circle , a green square , ... and a yellow circle"
//               ("the image shows ...", "there are six objects : ...")
//   sweep       "from left to right : a gray square , a red circle , ..."
//   chain       random order, each placed relative to the one before:
//               "a blue circle in the center , a red circle above it , a green square to its left , ..."
//   attributes  random order: "the green object is a square , the red object is a circle , ..."
//   counts      "four circles and two squares : ..." then a random order
// Places: thirds of the image (x < 25 left, < 50 centre, else right; same for
// y: top, middle, bottom) -> "at the top left", "on the left", "in the center", ...;
// relative: the larger of |dx|, |dy| decides "to its right/left", "below/above it".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mmkit/data/caption_jsonl.h"
#include "mmkit/data/sort_of_clevr.h"

namespace mmkit::data {

constexpr int kSocCaptionStyles = 6;

// `count` (1..6) references in distinct styles, deterministic by seed.
std::vector<std::string> soc_captions(const SocScene& scene, uint64_t seed, int count = 5);

// The scene as ground truth for the object F1 (colour, shape, centre).
std::vector<SceneObject> soc_scene_objects(const SocScene& scene);

struct SocCaptionOptions {
  std::string out_dir;
  int64_t train_images = 9000, test_images = 1000;
  int captions_per_image = 5;
  uint64_t seed = 1;
};
// Writes OUT/images/{train,test}_NNNNN.png and OUT/train.jsonl, OUT/test.jsonl
// in the multi-reference form of data/caption_jsonl.h, with "objects". The
// test scenes never repeat a training scene. Shows progress; files are
// written atomically.
void write_soc_captions(const SocCaptionOptions& o);

}  // namespace mmkit::data
