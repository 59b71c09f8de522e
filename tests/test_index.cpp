// The image index: build, search, resume after an interruption (including
// torn writes), bad files, the IVF kinds, and model mismatches.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "mmkit/infer/clip_runner.h"
#include "mmkit/index/embedding_index.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::index;

namespace {

struct IndexSetup {
  std::string dir, images, model;
  std::vector<std::string> files;
};

IndexSetup setup(const std::string& tag, int n) {
  IndexSetup s;
  s.dir = test::make_temp_dir(tag);
  s.images = s.dir + "/images";
  ::mkdir(s.images.c_str(), 0755);
  s.files = test::write_shape_images(s.images, n);
  s.model = test::write_tiny_clip(s.dir);
  return s;
}

BuildOptions opts(const IndexSetup& s, const std::string& out) {
  BuildOptions o;
  o.images_dir = s.images;
  o.out_dir = s.dir + "/" + out;
  o.batch = 8;
  o.progress = false;
  return o;
}

}  // namespace

TEST(EmbeddingIndex, BuildsSearchesAndStoresTheRunnersEmbeddings) {
  IndexSetup s = setup("index_build", 30);
  std::ofstream(s.images + "/broken.png") << "not a png";
  ClipRunner r = ClipRunner::open(s.model);
  BuildResult res = build_index(r, opts(s, "idx"));
  EXPECT_TRUE(res.complete);
  EXPECT_EQ(res.count, 30);
  EXPECT_EQ(res.kind, "flat");
  ASSERT_EQ(res.skipped.size(), 1u);
  EXPECT_NE(res.skipped[0].find("broken.png"), std::string::npos) << res.skipped[0];
  EXPECT_NE(res.skipped[0].find("unknown image format"), std::string::npos) << res.skipped[0];

  auto idx = EmbeddingIndex::open(s.dir + "/idx");
  ASSERT_EQ(idx->size(), 30);
  EXPECT_EQ(idx->dim(), 32);
  // Stored rows are the runner's normalised embeddings of the same files.
  for (int i : {0, 13, 29}) {
    Tensor want = r.embed_images({decode_image_file(s.files[size_t(i)])}, true);
    std::vector<float> got = idx->embedding(i);
    EXPECT_EQ(idx->item(i).path, s.files[size_t(i)]);
    EXPECT_EQ(idx->item(i).width, 48);
    EXPECT_TRUE(test::close("row " + std::to_string(i), Tensor::from_vector(Shape{1, 32}, got), want, 1e-6f, 1e-5f));
    auto hits = idx->search(got.data(), 5);
    ASSERT_EQ(hits.size(), 5u);
    EXPECT_EQ(hits[0].id, i);
    EXPECT_NEAR(hits[0].score, 1.0, 1e-4);
    for (size_t k = 1; k < hits.size(); ++k) EXPECT_LE(hits[k].score, hits[k - 1].score);
  }
  EXPECT_EQ(idx->search(idx->embedding(0).data(), 100).size(), 30u);  // k capped at the size
  EXPECT_THROW(idx->item(30), Error);
}

TEST(EmbeddingIndex, ResumesAfterAnInterruptionWithTornWrites) {
  IndexSetup s = setup("index_resume", 40);
  ClipRunner r = ClipRunner::open(s.model);
  BuildOptions o = opts(s, "idx");
  o.limit = 17;  // "interrupted" after 17 images
  BuildResult first = build_index(r, o);
  EXPECT_FALSE(first.complete);
  EXPECT_EQ(first.count, 17);
  EXPECT_THROW(EmbeddingIndex::open(o.out_dir), Error);  // unfinished builds do not open
  // A kill in the middle of a batch leaves part of an embedding row and part of an items row.
  {
    std::ofstream e(o.out_dir + "/embeddings.f32", std::ios::app | std::ios::binary);
    e << "partial row";
    std::ofstream t(o.out_dir + "/items.tsv", std::ios::app);
    t << "17\t" << s.images << "/img_000";
  }
  o.limit = 0;
  BuildResult second = build_index(r, o);
  EXPECT_TRUE(second.complete);
  EXPECT_EQ(second.already_done, 17);
  EXPECT_EQ(second.embedded, 23);
  EXPECT_EQ(second.count, 40);

  // Same rows as a build in one go.
  BuildResult whole = build_index(r, opts(s, "whole"));
  EXPECT_EQ(whole.count, 40);
  auto a = EmbeddingIndex::open(o.out_dir), b = EmbeddingIndex::open(s.dir + "/whole");
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(a->item(i).path, b->item(i).path) << i;
    // Batches are cut differently, so GEMM blocking may differ in the last bit.
    EXPECT_TRUE(test::close("row " + std::to_string(i), Tensor::from_vector(Shape{1, 32}, a->embedding(i)),
                            Tensor::from_vector(Shape{1, 32}, b->embedding(i)), 1e-6f, 1e-5f));
  }
  // Nothing left to do: a rerun embeds nothing.
  BuildResult again = build_index(r, o);
  EXPECT_EQ(again.embedded, 0);
  EXPECT_EQ(again.count, 40);
}

TEST(EmbeddingIndex, IvfKindsBuildAndFindNeighbours) {
  IndexSetup s = setup("index_ivf", 300);
  ClipRunner r = ClipRunner::open(s.model);
  auto flat_o = opts(s, "flat");
  flat_o.kind = "flat";
  build_index(r, flat_o);
  auto flat = EmbeddingIndex::open(flat_o.out_dir);

  BuildOptions ivf_o = opts(s, "ivf");
  ivf_o.kind = "ivf";
  ivf_o.nlist = 8;
  EXPECT_EQ(build_index(r, ivf_o).kind, "ivf");
  auto ivf = EmbeddingIndex::open(ivf_o.out_dir);
  EXPECT_EQ(ivf->info()["nlist"], 8);
  // Visiting every list makes IVF-Flat exact.
  for (int i : {3, 150, 299}) {
    std::vector<float> q = flat->embedding(i);
    auto want = flat->search(q.data(), 5), got = ivf->search(q.data(), 5, /*nprobe=*/8);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k].score, want[k].score, 1e-5) << i << " rank " << k;
  }

  BuildOptions pq_o = opts(s, "pq");
  pq_o.kind = "ivfpq";
  pq_o.nlist = 4;
  pq_o.pq_m = 8;
  EXPECT_EQ(build_index(r, pq_o).kind, "ivfpq");
  auto pq = EmbeddingIndex::open(pq_o.out_dir);
  std::vector<float> q = flat->embedding(42);
  auto hits = pq->search(q.data(), 10, 4);
  ASSERT_EQ(hits.size(), 10u);
  for (auto& h : hits) EXPECT_TRUE(h.id >= 0 && h.id < 300);

  BuildOptions bad = opts(s, "bad");
  bad.kind = "ivfpq";
  bad.pq_m = 7;
  try {
    build_index(r, bad);
    ADD_FAILURE() << "pq_m 7 accepted for dim 32";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must divide"), std::string::npos) << e.what();
  }
}

TEST(EmbeddingIndex, RefusesToResumeWithAnotherModel) {
  IndexSetup s = setup("index_model", 5);
  ClipRunner r = ClipRunner::open(s.model);
  build_index(r, opts(s, "idx"));
  ClipConfig other = test::serve_clip_config();
  other.vision_layers = 2;
  ClipRunner r2 = ClipRunner::open(test::write_tiny_clip(s.dir, 8, other));
  try {
    build_index(r2, opts(s, "idx"));
    ADD_FAILURE() << "resumed with another model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(EmbeddingIndex::open(s.dir + "/nothing"), Error);
}

TEST(EmbeddingIndex, AFolderWithoutImagesIsAnError) {
  IndexSetup s = setup("index_empty", 0);
  ClipRunner r = ClipRunner::open(s.model);
  EXPECT_THROW(build_index(r, opts(s, "idx")), Error);
}
