#include "mmkit/infer/embed_folder.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mmkit/data/image_prefetch.h"
#include "mmkit/io/npy.h"
#include "mmkit/util/progress.h"

namespace mmkit {

std::vector<std::string> list_image_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail("cannot open image folder ", dir, ": ", std::strerror(errno));
  std::vector<std::string> files;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    std::string lower = n;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    for (const char* ext : {".png", ".jpg", ".jpeg"}) {
      size_t L = std::strlen(ext);
      if (lower.size() > L && lower.compare(lower.size() - L, L, ext) == 0) files.push_back(dir + "/" + n);
    }
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

EmbedFolderResult embed_folder(ClipRunner& r, const std::string& dir, const std::string& out,
                               bool normalize, int batch, int decode_threads) {
  const bool npy = out.size() > 4 && out.compare(out.size() - 4, 4, ".npy") == 0;
  std::vector<std::string> files = list_image_files(dir);
  MMKIT_CHECK(!files.empty(), "no PNG or JPEG files in ", dir);
  const int64_t E = r.config().embed_dim;
  EmbedFolderResult res;
  std::vector<float> all;
  std::vector<std::string> order;
  std::string tmp = out + ".tmp";
  std::ofstream jsonl;
  if (!npy) {
    jsonl.open(tmp);
    MMKIT_CHECK(jsonl.good(), "cannot write ", out);
  }
  Progress::Options po;
  po.unit = "img/s";
  Progress bar("embed", int64_t(files.size()), stderr, po);
  // Batch k+1 is decoded and preprocessed on the prefetcher's thread while batch k embeds.
  data::ImagePrefetcher pf(files, r.preprocess(), batch, decode_threads);
  data::ImageBatch b;
  while (pf.next(b)) {
    for (auto& [i, why] : b.skipped) res.skipped.push_back(files[i] + ": " + why);
    if (b.count() > 0) {
      Tensor emb = r.embed_pixels(b.pixels.data(), b.count(), normalize, batch);
      for (int64_t k = 0; k < b.count(); ++k) {
        const float* row = emb.f32() + k * E;
        const std::string& name = files[b.index[size_t(k)]];
        if (npy) {
          all.insert(all.end(), row, row + E);
          order.push_back(name);
        } else {
          nlohmann::json j = {{"image", name}, {"embedding", std::vector<float>(row, row + E)}};
          jsonl << j.dump() << "\n";
        }
      }
      res.embedded += b.count();
    }
    bar.update(int64_t(b.end));
  }
  bar.finish();
  if (res.embedded == 0) {
    std::remove(tmp.c_str());
    fail("none of the ", files.size(), " image files in ", dir, " could be decoded (first: ",
         res.skipped.empty() ? std::string("?") : res.skipped.front(), ")");
  }
  if (npy) {
    Tensor t = Tensor::from_vector(Shape{int64_t(order.size()), E}, all);
    io::write_npy(out, t);
    std::ofstream p(out + ".paths.txt");
    for (auto& n : order) p << n << "\n";
  } else {
    jsonl.close();
    MMKIT_CHECK(!jsonl.fail() && std::rename(tmp.c_str(), out.c_str()) == 0, "cannot write ", out);
  }
  return res;
}

}  // namespace mmkit
