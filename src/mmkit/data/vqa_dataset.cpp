#include "mmkit/data/vqa_dataset.h"

#include <algorithm>

#include "mmkit/core/error.h"
#include "mmkit/util/progress.h"

namespace mmkit::data {

VqaDataset load_vqa_dataset(const std::string& jsonl, int64_t limit_images, bool show_progress) {
  VqaDataset d;
  std::vector<VqaExample> all = read_vqa_jsonl(jsonl);
  ImageIndex idx = index_images(all);
  const int64_t n_img = limit_images > 0 ? std::min<int64_t>(limit_images, int64_t(idx.images.size()))
                                         : int64_t(idx.images.size());
  d.image_paths.assign(idx.images.begin(), idx.images.begin() + n_img);
  d.questions_of.resize(size_t(n_img));
  for (size_t e = 0; e < all.size(); ++e) {
    const int32_t k = idx.of_example[e];
    if (k >= n_img) continue;
    d.questions_of[size_t(k)].push_back(int64_t(d.examples.size()));
    d.examples.push_back(std::move(all[e]));
  }
  // Decode every image once, in parallel; the first failure (by index) is reported.
  d.images.resize(size_t(n_img));
  std::vector<std::string> errors(static_cast<size_t>(n_img));
  ProgressOptions po;
  po.unit = "img/s";
  if (!show_progress) po.mode = Progress::Mode::off;
  Progress bar("decode " + jsonl, n_img, stderr, po);
  const int64_t chunk = 256;
  for (int64_t i0 = 0; i0 < n_img; i0 += chunk) {
    const int64_t i1 = std::min(n_img, i0 + chunk);
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t i = i0; i < i1; ++i) {
      try {
        d.images[size_t(i)] = decode_image_file(d.image_paths[size_t(i)]);
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    }
    for (int64_t i = i0; i < i1; ++i)
      if (!errors[size_t(i)].empty())
        fail(jsonl, ": image ", d.image_paths[size_t(i)], " cannot be used: ", errors[size_t(i)]);
    bar.update(i1);
  }
  bar.finish();
  return d;
}

VqaDataset split_off_images(VqaDataset& d, int64_t n) {
  const int64_t total = int64_t(d.images.size());
  n = std::clamp<int64_t>(n, 0, std::max<int64_t>(total - 1, 0));
  VqaDataset keep, out;
  for (int64_t i = 0; i < total; ++i) {
    VqaDataset& dst = i < total - n ? keep : out;
    std::vector<int64_t> qs;
    for (int64_t e : d.questions_of[size_t(i)]) {
      qs.push_back(int64_t(dst.examples.size()));
      dst.examples.push_back(std::move(d.examples[size_t(e)]));
    }
    dst.questions_of.push_back(std::move(qs));
    dst.image_paths.push_back(std::move(d.image_paths[size_t(i)]));
    dst.images.push_back(std::move(d.images[size_t(i)]));
  }
  d = std::move(keep);
  return out;
}

}  // namespace mmkit::data
