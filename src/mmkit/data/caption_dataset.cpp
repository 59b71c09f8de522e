#include "mmkit/data/caption_dataset.h"

#include <cstring>

#include "mmkit/core/error.h"
#include "mmkit/image/image.h"
#include "mmkit/util/progress.h"

namespace mmkit::data {

CaptionData load_caption_data(const std::string& jsonl, int64_t image_size, int64_t channels, int64_t limit,
                              bool progress) {
  MMKIT_CHECK(channels == 1 || channels == 3, "caption data: channels must be 1 or 3, got ", channels);
  CaptionData d;
  d.examples = read_caption_jsonl(jsonl);
  if (limit > 0 && limit < d.n()) d.examples.resize(size_t(limit));
  d.channels = channels;
  ProgressOptions po;
  po.unit = "img/s";
  if (!progress) po.mode = ProgressMode::off;
  Progress bar("loading " + jsonl, d.n(), stderr, po);
  for (int64_t i = 0; i < d.n(); ++i) {
    Image im = decode_image_file(d.examples[size_t(i)].image);
    if (i == 0) {
      d.size = image_size > 0 ? image_size : im.width;
      d.pixels.resize(size_t(d.n() * d.size * d.size * channels));
    }
    im = fit_image(im, d.size, channels);
    std::memcpy(d.pixels.data() + i * d.size * d.size * channels, im.pixels.data(), im.pixels.size());
    bar.update(i + 1);
  }
  bar.finish();
  return d;
}

}  // namespace mmkit::data
