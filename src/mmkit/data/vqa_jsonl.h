// Generic VQA data as JSON Lines, one question per line:
//   {"image": "images/train_00000.png", "question": "What ...?", "answers": ["circle", ...]}
// optional: "type" (string, for per-type accuracy), "relational" (bool).
// Image paths are relative to the JSONL file's directory (or absolute).
// Blank lines are skipped. Any other bad line throws mmkit::Error naming
// file:line and the problem (invalid JSON, missing/mistyped field, empty answers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmkit::data {

struct VqaExample {
  std::string image;                 // resolved path
  std::string question;
  std::vector<std::string> answers;  // annotators' answers (normalised by normalize_answer)
  std::string type;                  // "" when absent
  bool relational = false;
};

std::vector<VqaExample> read_vqa_jsonl(const std::string& path);
// The same from memory: `text` is the file's content, `path` names it in
// errors and resolves relative image paths (fuzz/fuzz_jsonl.cpp).
std::vector<VqaExample> parse_vqa_jsonl(const std::string& text, const std::string& path);

// Lower-case ASCII, trim, collapse inner whitespace runs to one space.
std::string normalize_answer(const std::string& a);

// Distinct image paths in first-seen order, and for each example its index
// into that list.
struct ImageIndex {
  std::vector<std::string> images;
  std::vector<int32_t> of_example;
};
ImageIndex index_images(const std::vector<VqaExample>& ex);

}  // namespace mmkit::data
