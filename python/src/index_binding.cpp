// mmkit.Index: the image search index of `mmkit index build` / `mmkit search`
// (index/embedding_index). An index is a folder on disk: build() writes it
// (resumable), open() loads it, search() takes text, an image or a vector.
#include <pybind11/stl.h>

#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "bindings.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/util/file_util.h"
#include "py_common.h"

namespace mmkit::py {

namespace {

struct PyIndex {
  std::unique_ptr<index::EmbeddingIndex> idx;
  pb::object model;  // a ClipModel, checked against the index (None until a text/image query needs one)
};

pb::dict build(const pb::object& model, const pb::handle& images_obj, const pb::handle& out_obj,
               const std::string& kind, int nlist, int pq_m, int batch, int decode_threads, bool progress,
               int64_t limit) {
  index::BuildOptions o;
  o.images_dir = path_arg(images_obj, "images");
  o.out_dir = path_arg(out_obj, "out");
  o.kind = kind;
  o.nlist = nlist;
  o.pq_m = pq_m;
  o.batch = batch;
  o.decode_threads = decode_threads;
  o.progress = progress;
  o.limit = limit;
  const std::string model_path = model.attr("path").cast<std::string>();
  char abs[PATH_MAX];
  o.model_path = ::realpath(model_path.c_str(), abs) ? std::string(abs) : model_path;  // as `mmkit index build`
  ClipRunner& r = clip_runner_of(model);
  std::mutex& mu = clip_mutex_of(model);
  index::BuildResult res = call_released({o.images_dir}, [&] {
    std::lock_guard<std::mutex> lock(mu);
    apply_threads();
    make_dirs(o.out_dir);
    return index::build_index(r, o);
  });
  pb::dict d;
  d["count"] = res.count;
  d["embedded"] = res.embedded;
  d["already_done"] = res.already_done;
  d["skipped"] = res.skipped;
  d["kind"] = res.kind;
  d["complete"] = res.complete;
  return d;
}

std::shared_ptr<PyIndex> open_index(const pb::handle& dir_obj, const pb::object& model) {
  auto p = std::make_shared<PyIndex>();
  const std::string dir = path_arg(dir_obj, "path");
  p->idx = call_released({dir}, [&] { return index::EmbeddingIndex::open(dir); });
  p->model = model;
  if (!model.is_none()) {
    ClipRunner& r = clip_runner_of(model);
    const std::string name = model.attr("path").cast<std::string>();
    call_released({}, [&] {
      std::lock_guard<std::mutex> lock(clip_mutex_of(model));
      index::check_index_model(p->idx->info(), dir, r, name);
    });
  }
  return p;
}

pb::list search(PyIndex& p, const pb::object& text, const pb::object& image, const pb::object& vector, int k,
                int nprobe) {
  const int given = int(!text.is_none()) + int(!image.is_none()) + int(!vector.is_none());
  if (given != 1) throw pb::value_error("search: give exactly one of text=, image= or vector=");
  if (k < 1) throw pb::value_error("k must be >= 1, got " + std::to_string(k));
  std::vector<float> q;
  if (!vector.is_none()) {
    auto v = pb::array_t<float, pb::array::c_style | pb::array::forcecast>::ensure(vector);
    if (!v || v.ndim() != 1 || v.shape(0) != p.idx->dim())
      throw pb::value_error("vector: expected a 1-D array of " + std::to_string(p.idx->dim()) +
                            " floats (the index's dimension)");
    q.assign(v.data(), v.data() + v.shape(0));
  } else {
    if (p.model.is_none()) {  // the model the index records, as `mmkit search` without --model
      const std::string m = p.idx->info().value("model", std::string());
      if (m.empty()) throw pb::value_error(p.idx->dir() + " does not record its model; open it with model=");
      pb::object mod = pb::module_::import("mmkit._mmkit");
      pb::object model = mod.attr("ClipModel")(m);
      ClipRunner& r = clip_runner_of(model);
      call_released({}, [&] { index::check_index_model(p.idx->info(), p.idx->dir(), r, m); });
      p.model = model;
    }
    ClipRunner& r = clip_runner_of(p.model);
    std::mutex& mu = clip_mutex_of(p.model);
    if (!text.is_none()) {
      std::vector<std::string> t{text_arg(text, "text")};
      Tensor e = call_released({}, [&] {
        std::lock_guard<std::mutex> lock(mu);
        apply_threads();
        return r.embed_texts(t, true);
      });
      q.assign(e.f32(), e.f32() + e.numel());
    } else {
      std::vector<ImageArg> args{image_arg(image, "image")};
      Tensor e = call_released(paths_of(args), [&] {
        std::vector<Image> decoded = decode_all(args);
        std::lock_guard<std::mutex> lock(mu);
        apply_threads();
        return r.embed_images(decoded, true);
      });
      q.assign(e.f32(), e.f32() + e.numel());
    }
  }
  std::vector<index::SearchHit> hits = call_released({}, [&] { return p.idx->search(q.data(), k, nprobe); });
  pb::list out;  // the keys of `mmkit search --json`
  for (size_t i = 0; i < hits.size(); ++i) {
    const index::IndexItem& it = p.idx->item(hits[i].id);
    pb::dict d;
    d["rank"] = i + 1;
    d["id"] = hits[i].id;
    d["score"] = hits[i].score;
    d["name"] = it.path.substr(it.path.find_last_of('/') + 1);
    d["width"] = it.width;
    d["height"] = it.height;
    d["path"] = it.path;
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_index(pb::module_& mod) {
  pb::class_<PyIndex, std::shared_ptr<PyIndex>>(mod, "Index", R"(An image search index: a folder written by
Index.build (or `mmkit index build`), opened with Index.open (or mmkit.load_index).)")
      .def_static("build", &build, pb::arg("model"), pb::arg("images"), pb::arg("out"), pb::arg("kind") = "auto",
                  pb::arg("nlist") = 0, pb::arg("pq_m") = 0, pb::arg("batch") = 32, pb::arg("decode_threads") = 2,
                  pb::arg("progress") = true, pb::arg("limit") = 0,
                  R"(Embed every PNG/JPEG in the folder `images` with the ClipModel `model` into the index folder
`out` (resumable: a second call embeds only new files), as `mmkit index build` with the same
options and defaults (kind: auto, flat, ivf or ivfpq; nlist 0: 4 sqrt(n); pq_m 0: dim / 8; limit:
the CLI's --stop-after). progress: a progress bar on stderr. Returns a dict with count, embedded,
already_done, skipped, kind and complete.)")
      .def_static("open", &open_index, pb::arg("path"), pb::arg("model") = pb::none(),
                  "Open an index folder. model: the ClipModel for text/image queries (default: the one the "
                  "index records, loaded on the first such query); checked against the index.")
      .def("search", &search, pb::kw_only(), pb::arg("text") = pb::none(), pb::arg("image") = pb::none(),
           pb::arg("vector") = pb::none(), pb::arg("k") = 5, pb::arg("nprobe") = 0,
           R"(The k nearest images to a text, an image (path, PIL image, uint8 array) or a float32 vector of
the index's dimension (normalised for cosine scores): a list of dicts with rank, id, score, name,
width, height and path, best first.)")
      .def("embedding", [](const PyIndex& p, int64_t id) {
             if (id < 0 || id >= p.idx->size()) throw pb::index_error("id " + std::to_string(id) + " out of range");
             return vector_to_numpy(p.idx->embedding(id));
           }, pb::arg("id"), "The stored (normalised) embedding of image `id`, float32 [dim].")
      .def("__len__", [](const PyIndex& p) { return p.idx->size(); })
      .def_property_readonly("dim", [](const PyIndex& p) { return p.idx->dim(); })
      .def_property_readonly("path", [](const PyIndex& p) { return p.idx->dir(); })
      .def("__repr__", [](const PyIndex& p) {
        return "<mmkit.Index " + p.idx->dir() + " (" + std::to_string(p.idx->size()) + " images)>";
      });
}

}  // namespace mmkit::py
