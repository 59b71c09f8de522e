#include "mmkit/data/image_text_dataset.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "mmkit/core/error.h"
#include "mmkit/core/rng.h"
#include "mmkit/image/image.h"
#include "mmkit/text/utf8.h"
#include "mmkit/util/file_util.h"

namespace mmkit::data {

namespace {

// base: parent_dir() of the caption file ("" or ending in '/').
std::string resolve(const std::string& base, const std::string& p) {
  return !p.empty() && p[0] == '/' ? p : base + p;
}

// One CSV record starting at `pos` (may span lines inside quotes).
bool csv_record(const std::string& s, size_t& pos, std::vector<std::string>& out, int64_t& line,
                const std::string& path) {
  out.clear();
  if (pos >= s.size()) return false;
  std::string field;
  bool quoted = false, was_quoted = false;
  const int64_t start_line = line;
  while (pos < s.size()) {
    char c = s[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < s.size() && s[pos] == '"') {
          field += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
      was_quoted = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
      ++line;
      break;
    } else {
      field += c;
    }
  }
  MMKIT_CHECK(!quoted, path, ":", start_line, ": unterminated quoted field");
  out.push_back(field);
  return true;
}

}  // namespace

std::vector<ImageTextPair> read_image_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f, "cannot open caption file ", path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_image_text(text, path);
}

std::vector<ImageTextPair> parse_image_text(const std::string& text, const std::string& path) {
  const std::string base = parent_dir(path);
  std::vector<ImageTextPair> out;
  std::map<std::string, int64_t> ids;
  auto add = [&](const std::string& image, const std::string& caption, int64_t line) {
    MMKIT_CHECK(!image.empty(), path, ":", line, ": empty image path");
    try {
      text::utf8_decode(caption);
    } catch (const Error& e) {
      fail(path, ":", line, ": caption ", e.what());
    }
    MMKIT_CHECK(!caption.empty(), path, ":", line, ": empty caption");
    ImageTextPair p;
    p.image = resolve(base, image);
    p.caption = caption;
    auto it = ids.emplace(p.image, int64_t(ids.size())).first;
    p.image_id = it->second;
    out.push_back(std::move(p));
  };
  const bool csv = path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0;
  if (csv) {
    size_t pos = 0;
    int64_t line = 1;
    std::vector<std::string> rec;
    MMKIT_CHECK(csv_record(text, pos, rec, line, path), path, ": empty CSV file (expected a header with image,caption)");
    int ci = -1, ii = -1;
    for (size_t k = 0; k < rec.size(); ++k) {
      std::string h = rec[k];
      if (h.size() >= 3 && h.compare(0, 3, "\xEF\xBB\xBF") == 0) h = h.substr(3);  // BOM
      if (h == "image") ii = int(k);
      if (h == "caption") ci = int(k);
    }
    MMKIT_CHECK(ii >= 0 && ci >= 0, path, ":1: the CSV header needs columns 'image' and 'caption'");
    while (true) {
      int64_t at = line;
      if (!csv_record(text, pos, rec, line, path)) break;
      if (rec.size() == 1 && rec[0].empty()) continue;  // blank line
      MMKIT_CHECK(int(rec.size()) > std::max(ii, ci), path, ":", at, ": expected at least ",
                  std::max(ii, ci) + 1, " columns, got ", rec.size());
      add(rec[size_t(ii)], rec[size_t(ci)], at);
    }
  } else {
    size_t pos = 0;
    int64_t line = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string l = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      ++line;
      if (l.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        text::utf8_decode(l);
      } catch (const Error& e) {
        fail(path, ":", line, ": ", e.what());
      }
      nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
      MMKIT_CHECK(j.is_object(), path, ":", line, ": not a JSON object");
      MMKIT_CHECK(j.contains("image") && j["image"].is_string(), path, ":", line,
                  ": missing string field \"image\"");
      if (j.contains("caption")) {
        MMKIT_CHECK(j["caption"].is_string(), path, ":", line, ": \"caption\" must be a string");
        add(j["image"], j["caption"], line);
      } else {
        MMKIT_CHECK(j.contains("captions") && j["captions"].is_array() && !j["captions"].empty(), path, ":",
                    line, ": missing field \"caption\" (or a non-empty \"captions\" list)");
        for (auto& c : j["captions"]) {
          MMKIT_CHECK(c.is_string(), path, ":", line, ": \"captions\" must hold strings");
          add(j["image"], c, line);
        }
      }
    }
  }
  MMKIT_CHECK(!out.empty(), path, ": no image-caption pairs");
  return out;
}

ImageBatchLoader::ImageBatchLoader(std::vector<std::string> paths, PreprocessConfig pre, int workers, bool flip)
    : paths_(std::move(paths)), pre_(std::move(pre)), workers_(std::max(1, workers)), flip_(flip) {}

ImageBatchLoader::~ImageBatchLoader() {
  if (pending_.valid()) pending_.wait();
}

void ImageBatchLoader::start(const std::vector<int64_t>& idx, uint64_t seed, int64_t row0) {
  if (pending_.valid()) pending_.wait();
  const int64_t per = floats_per_image();
  buf_.resize(idx.size() * size_t(per));
  pending_ = std::async(std::launch::async, [this, idx, seed, per, row0] {
    std::atomic<size_t> next{0};
    std::exception_ptr err;
    std::mutex mu;
    auto work = [&] {
      for (size_t i; (i = next++) < idx.size();) {
        try {
          const int64_t k = idx[i];
          MMKIT_CHECK(k >= 0 && k < int64_t(paths_.size()), "image index ", k, " out of range");
          Image img = decode_image_file(paths_[size_t(k)]);
          float* o = buf_.data() + i * size_t(per);
          preprocess_image(img, pre_, o);
          if (flip_ && (mix64(seed ^ mix64(uint64_t(row0) + i + 1)) & 1)) {
            const int64_t s = pre_.crop;
            for (int64_t c = 0; c < 3; ++c)
              for (int64_t y = 0; y < s; ++y) std::reverse(o + (c * s + y) * s, o + (c * s + y + 1) * s);
          }
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> l(mu);
          if (!err) err = std::make_exception_ptr(Error(std::string("image ") + paths_[size_t(idx[i])] + ": " + e.what()));
        }
      }
    };
    std::vector<std::thread> ts;
    for (int w = 1; w < workers_; ++w) ts.emplace_back(work);
    work();
    for (auto& t : ts) t.join();
    if (err) std::rethrow_exception(err);
  });
}

void ImageBatchLoader::finish(float* out) {
  MMKIT_CHECK(pending_.valid(), "ImageBatchLoader::finish without start");
  pending_.get();
  std::copy(buf_.begin(), buf_.end(), out);
}

}  // namespace mmkit::data
