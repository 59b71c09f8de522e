#include "mmkit/data/vqa_jsonl.h"

#include <cctype>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "mmkit/core/error.h"

namespace mmkit::data {

std::string normalize_answer(const std::string& a) {
  std::string out;
  bool space = false;
  for (unsigned char c : a) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += char(c < 0x80 ? std::tolower(c) : c);
  }
  return out;
}

std::vector<VqaExample> read_vqa_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f.good(), "cannot open VQA data ", path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MMKIT_CHECK(!f.bad(), "error reading ", path);
  return parse_vqa_jsonl(text, path);
}

std::vector<VqaExample> parse_vqa_jsonl(const std::string& text, const std::string& path) {
  std::istringstream f(text);
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::vector<VqaExample> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& what) { fail(path, ":", lineno, ": ", what); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      bad(std::string("invalid JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad("expected a JSON object");
    VqaExample ex;
    for (const char* k : {"image", "question"}) {
      if (!j.contains(k)) bad(std::string("missing field '") + k + "'");
      if (!j[k].is_string()) bad(std::string("field '") + k + "' must be a string");
    }
    const std::string img = j["image"].get<std::string>();
    if (img.empty()) bad("field 'image' is empty");
    ex.image = img[0] == '/' ? img : dir + img;
    ex.question = j["question"].get<std::string>();
    if (!j.contains("answers")) bad("missing field 'answers'");
    if (!j["answers"].is_array()) bad("field 'answers' must be an array of strings");
    for (auto& a : j["answers"]) {
      if (!a.is_string()) bad("field 'answers' must be an array of strings");
      std::string n = normalize_answer(a.get<std::string>());
      if (n.empty()) bad("an answer is empty");
      ex.answers.push_back(n);
    }
    if (ex.answers.empty()) bad("field 'answers' is empty");
    if (j.contains("type")) {
      if (!j["type"].is_string()) bad("field 'type' must be a string");
      ex.type = j["type"].get<std::string>();
    }
    if (j.contains("relational")) {
      if (!j["relational"].is_boolean()) bad("field 'relational' must be a boolean");
      ex.relational = j["relational"].get<bool>();
    }
    out.push_back(std::move(ex));
  }
  MMKIT_CHECK(!out.empty(), "VQA data ", path, " has no questions");
  return out;
}

ImageIndex index_images(const std::vector<VqaExample>& ex) {
  ImageIndex r;
  std::unordered_map<std::string, int32_t> seen;
  for (auto& e : ex) {
    auto [it, fresh] = seen.emplace(e.image, int32_t(r.images.size()));
    if (fresh) r.images.push_back(e.image);
    r.of_example.push_back(it->second);
  }
  return r;
}

}  // namespace mmkit::data
