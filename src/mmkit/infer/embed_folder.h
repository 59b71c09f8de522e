// Embedding a folder of images with CLIP, in batches with a progress bar.
// Output: JSONL ({"image": path, "embedding": [...]} per line) or .npy
// ([N, E] float32, with the image order in <out>.paths.txt). Files that do
// not decode are skipped and reported, never fatal.
#pragma once
#include <string>
#include <vector>

#include "mmkit/infer/clip_runner.h"

namespace mmkit {

struct EmbedFolderResult {
  int64_t embedded = 0;
  std::vector<std::string> skipped;  // "path: reason"
};

// Image files (png/jpg/jpeg, case-insensitive) directly in `dir`, sorted.
std::vector<std::string> list_image_files(const std::string& dir);

// Images are decoded and preprocessed on `decode_threads` threads beside the model
// (data/image_prefetch.h), one batch ahead. Two by default, as `index build` has: with the OpenMP
// pool on both cores, two decoding threads finish a batch in half the wall time they take from
// the GEMMs (build/embed_bench's split rows, 2026-12-07, ViT-B/32 f32 on 2 vCPUs: 2 OpenMP x 2
// decode 22.1 and 23.3 images/s against 21.4 and 20.9 with one decoding thread; the tower alone
// 24.0 and 24.5).
EmbedFolderResult embed_folder(ClipRunner& r, const std::string& dir, const std::string& out,
                               bool normalize, int batch = 32, int decode_threads = 2);

}  // namespace mmkit
