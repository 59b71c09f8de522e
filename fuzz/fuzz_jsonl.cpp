// Fuzz target: the dataset readers that take text files from users — the VQA JSONL reader
// (parse_vqa_jsonl: Sort-of-CLEVR's train/test.jsonl and any generic VQA data), the caption JSONL
// reader (parse_caption_jsonl), and the image–text collection reader (parse_image_text) in both
// of its formats, JSONL and CSV. Input: byte 0 picks the reader, the rest is the file's content.
// Invariants of accepted data: VQA answers are non-empty and already normalised, index_images
// maps every example into its image list; caption examples round-trip through
// caption_example_json; image–text captions are non-empty valid UTF-8 with image ids in range.
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "mmkit/data/caption_jsonl.h"
#include "mmkit/data/image_text_dataset.h"
#include "mmkit/data/vqa_jsonl.h"
#include "mmkit/text/utf8.h"

using namespace mmkit;

namespace {

void vqa(const std::string& text) {
  std::vector<data::VqaExample> ex;
  if (!fuzz::accepts([&] { ex = data::parse_vqa_jsonl(text, "data/train.jsonl"); })) return;
  if (ex.empty()) fuzz::violated("VQA reader accepted no examples");
  for (auto& e : ex) {
    if (e.image.empty() || e.answers.empty()) fuzz::violated("VQA example without image or answers");
    for (auto& a : e.answers)
      if (a.empty() || data::normalize_answer(a) != a) fuzz::violated("VQA answer not normalised");
  }
  data::ImageIndex idx = data::index_images(ex);
  if (idx.of_example.size() != ex.size()) fuzz::violated("index_images size");
  for (size_t i = 0; i < ex.size(); ++i) {
    const int32_t k = idx.of_example[i];
    if (k < 0 || size_t(k) >= idx.images.size() || idx.images[size_t(k)] != ex[i].image)
      fuzz::violated("index_images maps an example to the wrong image");
  }
}

void caption(const std::string& text) {
  std::vector<data::CaptionExample> ex;
  if (!fuzz::accepts([&] { ex = data::parse_caption_jsonl(text, "data/train.jsonl"); })) return;
  if (ex.empty()) fuzz::violated("caption reader accepted no examples");
  for (auto& e : ex) {
    if (e.captions.empty()) fuzz::violated("caption example without captions");
    // The writer's line reads back as the same example (paths are already resolved: read it
    // from a file without a directory).
    std::vector<data::CaptionExample> back = data::parse_caption_jsonl(data::caption_example_json(e) + "\n", "x.jsonl");
    if (back.size() != 1 || back[0].image != e.image || back[0].captions != e.captions ||
        !(back[0].objects == e.objects))
      fuzz::violated("caption JSONL round trip");
  }
}

void image_text(const std::string& text, bool csv) {
  std::vector<data::ImageTextPair> pairs;
  if (!fuzz::accepts([&] { pairs = data::parse_image_text(text, csv ? "data/pairs.csv" : "data/pairs.jsonl"); }))
    return;
  if (pairs.empty()) fuzz::violated("image-text reader accepted no pairs");
  for (auto& p : pairs) {
    if (p.image.empty() || p.caption.empty()) fuzz::violated("image-text pair with an empty field");
    text::utf8_decode(p.caption);  // accepted captions are valid UTF-8: must not throw
    if (p.image_id < 0 || p.image_id >= int64_t(pairs.size())) fuzz::violated("image id out of range");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 4;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (which == 0) vqa(text);
  else if (which == 1) caption(text);
  else image_text(text, which == 3);
  return 0;
}
