// Image-caption data as JSON Lines. Each line is one of
//   {"image": "images/a.png", "captions": ["a red circle ...", "..."]}   several references
//   {"image": "images/a.png", "caption": "a red circle ..."}             one reference
// (both forms may be mixed; lines naming the same image are merged, in
// first-seen order) with an optional ground truth for the object F1 metric:
//   "objects": [{"color": "red", "shape": "circle", "x": 12, "y": 40}, ...]   (x, y optional)
// Image paths are relative to the JSONL file's directory (or absolute).
// Blank lines are skipped; any other bad line throws mmkit::Error naming
// file:line and the problem.
#pragma once
#include <string>
#include <vector>

namespace mmkit::data {

struct SceneObject {
  std::string color, shape;  // e.g. "red", "circle"
  int x = -1, y = -1;        // centre in pixels, -1 when unknown
  bool operator==(const SceneObject& o) const { return color == o.color && shape == o.shape; }
};

struct CaptionExample {
  std::string image;                  // resolved path
  std::vector<std::string> captions;  // at least one reference
  std::vector<SceneObject> objects;   // empty when the data has none
};

std::vector<CaptionExample> read_caption_jsonl(const std::string& path);
// The same from memory: `text` is the file's content, `path` names it in
// errors and resolves relative image paths (fuzz/fuzz_jsonl.cpp).
std::vector<CaptionExample> parse_caption_jsonl(const std::string& text, const std::string& path);

// One line in the multi-reference form (image path as given).
std::string caption_example_json(const CaptionExample& e);

}  // namespace mmkit::data
