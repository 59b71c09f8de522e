// data::ImagePrefetcher: batches in file order, each image's pixels exactly preprocess_image's,
// undecodable files reported with their position and never fatal, the last partial batch, and
// destruction while the worker is still ahead (no hang).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "mmkit/data/image_prefetch.h"
#include "mmkit/image/image.h"
#include "mmkit/image/preprocess.h"
#include "test_util.h"

using mmkit::Image;

namespace {

Image pattern(int w, int h, int c, int seed) {
  Image im(w, h, c);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t((i * 37 + size_t(seed) * 101) % 251);
  return im;
}

}  // namespace

TEST(ImagePrefetch, BatchesInOrderWithSkippedFiles) {
  const std::string dir = mmkit::test::make_temp_dir("prefetch");
  std::vector<std::string> files;
  std::vector<Image> images;
  for (int i = 0; i < 7; ++i) {
    const std::string p = dir + "/img_" + std::to_string(i) + ".png";
    if (i == 3) {
      std::ofstream(p) << "not a png";
      images.emplace_back();
    } else {
      images.push_back(pattern(40 + 9 * i, 30 + 5 * i, i == 5 ? 1 : 3, i));
      mmkit::write_png(p, images.back());
    }
    files.push_back(p);
  }
  const auto cfg = mmkit::preprocess_preset("clip", 32);
  const size_t P = 3 * 32 * 32;
  for (int threads : {1, 2}) {
    mmkit::data::ImagePrefetcher pf(files, cfg, 3, threads);
    mmkit::data::ImageBatch b;
    std::vector<size_t> seen, skipped;
    size_t batches = 0;
    while (pf.next(b)) {
      ++batches;
      EXPECT_EQ(b.pixels.size(), size_t(b.count()) * P);
      for (int64_t k = 0; k < b.count(); ++k) {
        const size_t i = b.index[size_t(k)];
        seen.push_back(i);
        EXPECT_EQ(b.width[size_t(k)], images[i].width);
        std::vector<float> want(P);
        mmkit::preprocess_image(images[i], cfg, want.data());
        EXPECT_TRUE(std::equal(want.begin(), want.end(), b.pixels.begin() + long(size_t(k) * P))) << "image " << i;
      }
      for (auto& [i, why] : b.skipped) {
        skipped.push_back(i);
        EXPECT_NE(why.find("img_3.png"), std::string::npos) << why;
      }
    }
    EXPECT_EQ(batches, 3u);  // 3 + 3 + 1
    EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 4, 5, 6}));
    EXPECT_EQ(skipped, std::vector<size_t>{3});
    EXPECT_FALSE(pf.next(b));
  }
  // Abandoned after one batch: the destructor stops the worker.
  {
    mmkit::data::ImagePrefetcher pf(files, cfg, 1, 1);
    mmkit::data::ImageBatch b;
    ASSERT_TRUE(pf.next(b));
  }
}
