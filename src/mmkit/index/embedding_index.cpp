#include "mmkit/index/embedding_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/index_io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "mmkit/data/image_prefetch.h"
#include "mmkit/infer/embed_folder.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/progress.h"

namespace mmkit::index {

namespace {

int64_t file_size(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? int64_t(st.st_size) : 0;
}

std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  MMKIT_CHECK(f.good(), "cannot read ", p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Skipped files: "path \t reason" lines; incomplete last line ignored.
std::set<std::string> read_skipped(const std::string& p) {
  std::set<std::string> out;
  if (!path_exists(p)) return out;
  std::string s = read_text(p);
  size_t a = 0;
  for (size_t b; (b = s.find('\n', a)) != std::string::npos; a = b + 1) {
    std::string line = s.substr(a, b - a);
    out.insert(line.substr(0, line.find('\t')));
  }
  return out;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  return s;
}

nlohmann::json config_json(const ClipConfig& c) { return nlohmann::json::parse(c.to_json()); }

std::unique_ptr<faiss::Index> make_index(const std::string& kind, int64_t dim, int64_t n, int nlist, int pq_m,
                                         const float* data, std::string* used_kind, int* used_nlist, int* used_m) {
  std::string k = kind;
  if (k == "auto") k = n < 50000 ? "flat" : "ivf";
  *used_kind = k;
  if (k == "flat") {
    auto idx = std::make_unique<faiss::IndexFlatIP>(dim);
    idx->add(n, data);
    return idx;
  }
  MMKIT_CHECK(k == "ivf" || k == "ivfpq", "unknown index kind '", kind, "' (expected auto, flat, ivf or ivfpq)");
  if (nlist <= 0) nlist = std::max(1, int(4 * std::sqrt(double(n))));
  nlist = int(std::min<int64_t>(nlist, n));
  // FAISS wants ~39 training points per list; fewer works but warns.
  *used_nlist = nlist;
  if (k == "ivfpq") {
    if (pq_m <= 0) pq_m = int(dim / 8);
    MMKIT_CHECK(pq_m > 0 && dim % pq_m == 0, "--pq-m ", pq_m, " must divide the embedding dimension ", dim);
    MMKIT_CHECK(n >= 256, "ivfpq needs at least 256 images to train its 8-bit codebooks, got ", n);
    *used_m = pq_m;
  }
  auto quantizer = std::make_unique<faiss::IndexFlatIP>(dim);
  std::unique_ptr<faiss::IndexIVF> idx;
  if (k == "ivf")
    idx = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), dim, size_t(nlist), faiss::METRIC_INNER_PRODUCT);
  else
    idx = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), dim, size_t(nlist), size_t(pq_m), 8,
                                              faiss::METRIC_INNER_PRODUCT);
  quantizer.release();  // owned by idx from here on
  idx->own_fields = true;
  idx->cp.seed = 1234;
  idx->cp.verbose = false;
  idx->train(n, data);
  idx->add(n, data);
  return idx;
}

}  // namespace

std::vector<IndexItem> read_items(const std::string& path) {
  std::vector<IndexItem> out;
  if (!path_exists(path)) return out;
  std::string s = read_text(path);
  size_t a = 0;
  for (size_t b; (b = s.find('\n', a)) != std::string::npos; a = b + 1) {
    std::string line = s.substr(a, b - a);
    size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
    MMKIT_CHECK(t1 != std::string::npos && t2 != std::string::npos && t3 != std::string::npos, path,
                ": malformed row ", out.size(), " (expected id, path, width, height)");
    MMKIT_CHECK(std::stoll(line.substr(0, t1)) == int64_t(out.size()), path, ": row ", out.size(), " has id ",
                line.substr(0, t1));
    out.push_back({line.substr(t1 + 1, t2 - t1 - 1), std::stoi(line.substr(t2 + 1, t3 - t2 - 1)),
                   std::stoi(line.substr(t3 + 1))});
  }
  return out;
}

std::vector<float> model_probe(ClipRunner& runner) {
  const int64_t R = runner.image_resolution();
  std::vector<float> px(size_t(3 * R * R));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < R; ++y)
      for (int64_t x = 0; x < R; ++x)
        px[size_t((c * R + y) * R + x)] =
            float(std::sin(0.21 * double(x + 1) * double(c + 1)) + std::cos(0.17 * double(y + 1) - double(c)));
  Tensor e = runner.embed_pixels(px.data(), 1, /*normalize=*/true, 1);
  return std::vector<float>(e.f32(), e.f32() + e.numel());
}

void check_index_model(const nlohmann::json& info, const std::string& index_dir, ClipRunner& runner,
                       const std::string& model) {
  const std::string built = info.value("model", std::string("(not recorded)"));
  const int64_t dim = info.value("dim", int64_t(0));
  MMKIT_CHECK(runner.embed_dim() == dim, "model ", model, " makes ", runner.embed_dim(), "-d embeddings but index ",
              index_dir, " holds ", dim, "-d ones (built with ", built, "); use that model or rebuild the index");
  if (info.contains("model_probe")) {
    const std::vector<float> want = info.at("model_probe").get<std::vector<float>>();
    const std::vector<float> got = model_probe(runner);
    MMKIT_CHECK(want.size() == got.size(), index_dir, "/info.json: model_probe has ", want.size(), " values, expected ",
                got.size());
    double dot = 0, nw = 0, ng = 0;
    for (size_t i = 0; i < got.size(); ++i) dot += double(want[i]) * got[i], nw += double(want[i]) * want[i], ng += double(got[i]) * got[i];
    const double cos = nw > 0 && ng > 0 ? dot / std::sqrt(nw * ng) : 0;
    if (cos < kProbeMinCosine)
      fail("model ", model, " is not the model index ", index_dir, " was built with (", built,
           "): their embeddings of the same probe input agree only to cosine ", cos, " (same model: > ",
           kProbeMinCosine, "), so every score would be meaningless; use that model or rebuild the index");
    return;
  }
  MMKIT_CHECK(info.value("model_config", nlohmann::json()) == config_json(runner.config()), "model ", model,
              " has another config than the model index ", index_dir, " was built with (", built,
              "); use that model or rebuild the index");
}

BuildResult build_index(ClipRunner& runner, const BuildOptions& opt) {
  MMKIT_CHECK(!opt.out_dir.empty(), "index build needs an output directory");
  const int64_t E = runner.embed_dim();
  const std::string dir = opt.out_dir;
  if (!path_exists(dir)) MMKIT_CHECK(::mkdir(dir.c_str(), 0755) == 0, "cannot create ", dir, ": ", std::strerror(errno));
  const std::string items_p = dir + "/items.tsv", emb_p = dir + "/embeddings.f32", skip_p = dir + "/skipped.tsv",
                    info_p = dir + "/info.json", faiss_p = dir + "/index.faiss";
  nlohmann::json cfg = config_json(runner.config());
  const std::vector<float> probe = model_probe(runner);

  // Resume: the model must be the same, and the tables are cut to their common complete rows.
  std::vector<IndexItem> items;
  if (path_exists(info_p)) {
    nlohmann::json old = nlohmann::json::parse(read_text(info_p));
    MMKIT_CHECK(old.value("model_config", nlohmann::json()) == cfg, dir,
                " holds an index built with a different model config; use a new --out directory");
    if (old.contains("model_probe")) check_index_model(old, dir, runner, opt.model_path.empty() ? "--model" : opt.model_path);
    items = read_items(items_p);
    int64_t rows = file_size(emb_p) / (E * 4);
    if (int64_t(items.size()) > rows) items.resize(size_t(rows));
    rows = int64_t(items.size());
    MMKIT_CHECK(::truncate(emb_p.c_str(), rows * E * 4) == 0 || rows == 0, "cannot truncate ", emb_p);
    std::ostringstream os;
    for (size_t i = 0; i < items.size(); ++i)
      os << i << '\t' << items[i].path << '\t' << items[i].width << '\t' << items[i].height << '\n';
    write_text_atomic(items_p, os.str());
  } else {
    std::remove(items_p.c_str());
    std::remove(emb_p.c_str());
    std::remove(skip_p.c_str());
  }
  nlohmann::json info = {{"version", 1}, {"dim", E}, {"model_config", cfg}, {"images_dir", opt.images_dir},
                         {"model", opt.model_path}, {"model_probe", probe},
                         {"count", int64_t(items.size())}, {"complete", false}};
  write_text_atomic(info_p, info.dump(1));

  // Absolute paths in items.tsv: the server and searches may run from another directory.
  char abs[PATH_MAX];
  MMKIT_CHECK(::realpath(opt.images_dir.c_str(), abs), "cannot open image folder ", opt.images_dir, ": ",
              std::strerror(errno));
  std::vector<std::string> files = list_image_files(abs);
  std::set<std::string> done = read_skipped(skip_p);
  for (auto& it : items) done.insert(it.path);
  std::vector<std::string> todo;
  for (auto& f : files)
    if (!done.count(f)) todo.push_back(f);
  BuildResult res;
  res.total_files = int64_t(files.size());
  res.already_done = int64_t(files.size() - todo.size());
  const bool stopped_early = opt.limit > 0 && int64_t(todo.size()) > opt.limit;
  if (stopped_early) todo.resize(size_t(opt.limit));

  std::FILE* femb = std::fopen(emb_p.c_str(), "ab");
  std::FILE* fitems = std::fopen(items_p.c_str(), "ab");
  std::FILE* fskip = std::fopen(skip_p.c_str(), "ab");
  MMKIT_CHECK(femb && fitems && fskip, "cannot open the index tables in ", dir, " for appending");
  Progress::Options po;
  po.unit = "img/s";
  if (!opt.progress) po.mode = ProgressMode::off;
  Progress bar("index", int64_t(todo.size()), stderr, po);
  const size_t B = size_t(std::max(1, opt.batch));
  // The next batch is decoded and preprocessed on the prefetcher's threads while this one embeds.
  data::ImagePrefetcher pf(todo, runner.preprocess(), int(B), std::max(1, opt.decode_threads));
  data::ImageBatch cur;
  while (pf.next(cur)) {
    if (cur.count() > 0) {
      Tensor e = runner.embed_pixels(cur.pixels.data(), cur.count(), true, int(B));
      MMKIT_CHECK(std::fwrite(e.f32(), 4, size_t(e.numel()), femb) == size_t(e.numel()), "write error on ", emb_p);
      std::fflush(femb);  // embeddings before their rows: a row always has its embedding on disk
      for (size_t k = 0; k < cur.index.size(); ++k) {
        const IndexItem it{todo[cur.index[k]], cur.width[k], cur.height[k]};
        std::fprintf(fitems, "%zu\t%s\t%d\t%d\n", items.size(), one_line(it.path).c_str(), it.width, it.height);
        items.push_back(it);
      }
      std::fflush(fitems);
    }
    for (auto& [i, why] : cur.skipped) {
      std::fprintf(fskip, "%s\t%s\n", todo[i].c_str(), one_line(why).c_str());
      res.skipped.push_back(todo[i] + ": " + one_line(why));
    }
    std::fflush(fskip);
    res.embedded += cur.count();
    bar.update(int64_t(cur.end), std::to_string(res.skipped.size()) + " skipped");
  }
  bar.finish();
  std::fclose(femb);
  std::fclose(fitems);
  std::fclose(fskip);
  res.count = int64_t(items.size());
  info["count"] = res.count;
  if (stopped_early) {
    write_text_atomic(info_p, info.dump(1));
    return res;
  }
  MMKIT_CHECK(res.count > 0, "no image in ", opt.images_dir, " could be decoded; see ", skip_p);

  // The FAISS index over every stored row.
  std::vector<float> all(size_t(res.count * E));
  {
    std::FILE* f = std::fopen(emb_p.c_str(), "rb");
    MMKIT_CHECK(f && std::fread(all.data(), 4, all.size(), f) == all.size(), "cannot read ", emb_p);
    std::fclose(f);
  }
  int nlist = 0, m = 0;
  std::unique_ptr<faiss::Index> idx =
      make_index(opt.kind, E, res.count, opt.nlist, opt.pq_m, all.data(), &res.kind, &nlist, &m);
  std::string tmp = faiss_p + ".tmp";
  faiss::write_index(idx.get(), tmp.c_str());
  MMKIT_CHECK(std::rename(tmp.c_str(), faiss_p.c_str()) == 0, "cannot write ", faiss_p);
  info["kind"] = res.kind;
  info["nlist"] = nlist;
  info["pq_m"] = m;
  info["complete"] = true;
  write_text_atomic(info_p, info.dump(1));
  res.complete = true;
  return res;
}

EmbeddingIndex::~EmbeddingIndex() = default;

std::unique_ptr<EmbeddingIndex> EmbeddingIndex::open(const std::string& dir) {
  auto x = std::unique_ptr<EmbeddingIndex>(new EmbeddingIndex());
  x->dir_ = dir;
  const std::string info_p = dir + "/info.json";
  MMKIT_CHECK(path_exists(info_p), dir, " is not an index directory (no info.json); build one with mmkit index build");
  try {
    x->info_ = nlohmann::json::parse(read_text(info_p));
  } catch (const nlohmann::json::exception& e) {
    fail(info_p, ": invalid JSON: ", e.what());
  }
  MMKIT_CHECK(x->info_.value("complete", false), dir,
              ": the index build did not finish; rerun mmkit index build with the same --out to resume it");
  x->dim_ = x->info_.at("dim").get<int64_t>();
  x->items_ = read_items(dir + "/items.tsv");
  const std::string fp = dir + "/index.faiss";
  MMKIT_CHECK(path_exists(fp), fp, " is missing");
  try {
    x->index_.reset(faiss::read_index(fp.c_str()));
  } catch (const std::exception& e) {
    fail(fp, ": cannot read the FAISS index: ", e.what());
  }
  MMKIT_CHECK(x->index_->d == x->dim_, fp, ": dimension ", x->index_->d, ", info.json says ", x->dim_);
  MMKIT_CHECK(x->index_->ntotal == x->size(), fp, ": ", x->index_->ntotal, " vectors, items.tsv has ", x->size(),
              " rows");
  return x;
}

const IndexItem& EmbeddingIndex::item(int64_t id) const {
  MMKIT_CHECK(id >= 0 && id < size(), "index item ", id, " out of range [0, ", size(), ")");
  return items_[size_t(id)];
}

std::vector<float> EmbeddingIndex::embedding(int64_t id) const {
  item(id);
  std::vector<float> e(static_cast<size_t>(dim_));
  std::FILE* f = std::fopen((dir_ + "/embeddings.f32").c_str(), "rb");
  MMKIT_CHECK(f, "cannot read ", dir_, "/embeddings.f32");
  bool ok = std::fseek(f, long(id * dim_ * 4), SEEK_SET) == 0 && std::fread(e.data(), 4, e.size(), f) == e.size();
  std::fclose(f);
  MMKIT_CHECK(ok, dir_, "/embeddings.f32: cannot read row ", id);
  return e;
}

std::vector<SearchHit> EmbeddingIndex::search(const float* q, int k, int nprobe) const {
  k = int(std::min<int64_t>(std::max(k, 1), size()));
  std::vector<float> d(static_cast<size_t>(k));
  std::vector<faiss::Index::idx_t> ids(static_cast<size_t>(k));
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_.get())) {
    faiss::SearchParametersIVF p;
    p.nprobe = size_t(nprobe > 0 ? nprobe : std::min<int>(int(ivf->nlist), 16));
    index_->search(1, q, k, d.data(), ids.data(), &p);
  } else {
    index_->search(1, q, k, d.data(), ids.data());
  }
  std::vector<SearchHit> out;
  for (int i = 0; i < k; ++i)
    if (ids[size_t(i)] >= 0) out.push_back({int64_t(ids[size_t(i)]), d[size_t(i)]});
  return out;
}

}  // namespace mmkit::index
