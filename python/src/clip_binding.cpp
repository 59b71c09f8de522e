// mmkit.ClipModel: CLIP-like models over infer::ClipRunner, the runner `mmkit
// embed`, `mmkit tokenize` and `mmkit zero-shot` use, so results are the CLI's.
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>

#include "bindings.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/infer/clip_runner.h"
#include "py_common.h"

namespace mmkit::py {

namespace {

// The runner's activation buffers are shared, so calls on one model are
// serialised by `mu` (taken without the GIL, so other Python threads run meanwhile).
struct PyClip {
  std::string path;
  std::unique_ptr<ClipRunner> runner;
  std::unique_ptr<std::mutex> mu = std::make_unique<std::mutex>();
};

std::shared_ptr<PyClip> open_clip_model(const pb::handle& path_obj, const std::string& vocab,
                                        const std::string& preprocess) {
  auto m = std::make_shared<PyClip>();
  m->path = path_arg(path_obj, "path");
  call_released({m->path, vocab}, [&] {
    m->runner = std::make_unique<ClipRunner>(ClipRunner::open(m->path, vocab, preprocess));
  });
  return m;
}

// Preprocessed pixels: float32, C-contiguous, [N, 3, R, R] with R the model's resolution.
pb::array_t<float> checked_pixels(const PyClip& m, const pb::array& a) {
  const int64_t R = m.runner->image_resolution();
  std::string shape = "(";
  for (int i = 0; i < int(a.ndim()); ++i) shape += (i ? ", " : "") + std::to_string(a.shape(i));
  shape += ")";
  if (!a.dtype().is(pb::dtype::of<float>()))
    throw pb::value_error("pixels: expected float32 [N, 3, " + std::to_string(R) + ", " + std::to_string(R) +
                          "], got dtype " + std::string(pb::str(a.dtype())));
  if (a.ndim() != 4 || a.shape(0) < 1 || a.shape(1) != 3 || a.shape(2) != R || a.shape(3) != R)
    throw pb::value_error("pixels: expected float32 [N, 3, " + std::to_string(R) + ", " + std::to_string(R) +
                          "] (the model's resolution), got shape " + shape);
  // A C-contiguous float32 array is used in place; another layout is copied once.
  return pb::array_t<float, pb::array::c_style | pb::array::forcecast>::ensure(a);
}

pb::array_t<float> encode_image(PyClip& m, const pb::object& images, bool normalize) {
  if (pb::isinstance<pb::array>(images) && pb::reinterpret_borrow<pb::array>(images).ndim() == 4) {
    pb::array_t<float> px = checked_pixels(m, pb::reinterpret_borrow<pb::array>(images));
    const float* data = px.data();
    const int64_t n = px.shape(0);
    Tensor t = call_released({}, [&] {
      std::lock_guard<std::mutex> lock(*m.mu);
      apply_threads();
      return m.runner->embed_pixels(data, n, normalize);
    });
    return to_numpy(std::move(t));
  }
  std::vector<ImageArg> args = image_args(images, "images");
  if (args.empty()) throw pb::value_error("images: empty list (give at least one image)");
  Tensor t = call_released(paths_of(args), [&] {
    std::vector<Image> decoded = decode_all(args);
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return m.runner->embed_images(decoded, normalize);
  });
  return to_numpy(std::move(t));
}

pb::array_t<float> preprocess(PyClip& m, const pb::object& images) {
  std::vector<ImageArg> args = image_args(images, "images");
  const int64_t R = m.runner->image_resolution(), n = int64_t(args.size());
  Tensor t = call_released(paths_of(args), [&] {
    std::vector<Image> decoded = decode_all(args);
    Tensor x = Tensor::empty(Shape{n, 3, R, R});
    for (int64_t i = 0; i < n; ++i) preprocess_image(decoded[size_t(i)], m.runner->preprocess(), x.f32() + i * 3 * R * R);
    return x;
  });
  return to_numpy(std::move(t));
}

pb::array_t<float> encode_text(PyClip& m, const pb::object& texts, bool normalize) {
  std::vector<std::string> t = text_args(texts, "texts");
  if (t.empty()) throw pb::value_error("texts: empty list (give at least one text)");
  Tensor e = call_released({}, [&] {
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return m.runner->embed_texts(t, normalize);
  });
  return to_numpy(std::move(e));
}

pb::array_t<int32_t> ids_to_numpy(const std::vector<std::vector<int32_t>>& ids) {
  const size_t T = ids.empty() ? 0 : ids[0].size();
  pb::array_t<int32_t> a({pb::ssize_t(ids.size()), pb::ssize_t(T)});
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(a.mutable_data() + i * T, ids[i].data(), T * sizeof(int32_t));
  return a;
}

pb::array_t<int32_t> tokenize(PyClip& m, const pb::object& texts) {
  std::vector<std::string> t = text_args(texts, "texts");
  auto ids = call_released({}, [&] {
    std::lock_guard<std::mutex> lock(*m.mu);  // the tokenizer is loaded on first use
    return m.runner->tokenize(t);
  });
  return ids_to_numpy(ids);
}

pb::array_t<float> zero_shot(PyClip& m, const pb::object& images, const pb::object& labels,
                             const pb::object& templates) {
  std::vector<std::string> l = text_args(labels, "labels");
  std::vector<std::string> tp = templates.is_none() ? std::vector<std::string>{} : text_args(templates, "templates");
  std::vector<ImageArg> args = image_args(images, "images");
  if (args.empty()) throw pb::value_error("images: empty list (give at least one image)");
  ZeroShotResult z = call_released(paths_of(args), [&] {
    std::vector<Image> decoded = decode_all(args);
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return m.runner->zero_shot(decoded, l, tp);
  });
  return rows_to_numpy(z.probs, l.size());
}

}  // namespace

void bind_clip(pb::module_& mod) {
  pb::class_<PyClip, std::shared_ptr<PyClip>>(mod, "ClipModel", R"(A CLIP-like model (OpenAI/OpenCLIP, Hugging Face or mmkit
file, also `mmkit quantize` files). Made by mmkit.load(path); calls on one model run one at a time.)")
      .def(pb::init(&open_clip_model), pb::arg("path"), pb::arg("vocab") = "", pb::arg("preprocess") = "",
           "Open a CLIP model: path is a .safetensors file, a run folder or a Hugging Face folder; vocab as the "
           "CLI's --vocab (default: the tokenizer stored in the model, else files beside it); preprocess 'clip', "
           "'siglip' or 'imagenet' (default: the model's own, as the CLI's --preprocess: siglip for SigLIP, else "
           "clip).")
      .def("encode_image", &encode_image, pb::arg("images"), pb::arg("normalize") = true,
           R"(Image embeddings, float32 [N, E] (L2-normalised unless normalize=False, the CLI's --raw).

images: one image or a list: file paths, PIL images, uint8 numpy arrays HxW or HxWxC (C = 1, 3, 4),
or one float32 array [N, 3, R, R] of already preprocessed pixels (see preprocess()).)")
      .def("encode_text", &encode_text, pb::arg("texts"), pb::arg("normalize") = true,
           "Text embeddings, float32 [N, E]. texts: a str or a list of str (bytes are taken as UTF-8).")
      .def("tokenize", &tokenize, pb::arg("texts"),
           "Token ids, int32 [N, context_length] (start and end tokens included, zero-padded).")
      .def("preprocess", &preprocess, pb::arg("images"),
           "The model's input pixels for images (resize, crop, normalise), float32 [N, 3, R, R].")
      .def("zero_shot", &zero_shot, pb::arg("images"), pb::arg("labels"), pb::arg("templates") = pb::none(),
           R"(Zero-shot probabilities, float32 [N images, L labels] (rows sum to 1).

templates: prompts with {} for the label, averaged as CLIP does (default: ["a photo of a {}."]).)")
      .def(
          "_engine_seconds",
          [](PyClip& m, const pb::array& pixels, int repeats) {
            // bench/python_bench.py: the engine's own time for encode_image on preprocessed pixels, the
            // same call encode_image makes, timed in C++ with no Python between the repeats.
            pb::array_t<float> px = checked_pixels(m, pixels);
            const float* data = px.data();
            const int64_t n = px.shape(0);
            return call_released({}, [&] {
              std::lock_guard<std::mutex> lock(*m.mu);
              apply_threads();
              std::vector<double> s;
              for (int r = 0; r < repeats; ++r) {
                auto t0 = std::chrono::steady_clock::now();
                Tensor t = m.runner->embed_pixels(data, n, true);
                s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
              }
              return s;
            });
          },
          pb::arg("pixels"), pb::arg("repeats"), "Benchmark hook: seconds of each of `repeats` engine calls.")
      .def_property_readonly("path", [](const PyClip& m) { return m.path; })
      .def_property_readonly("kind", [](const PyClip&) { return "clip"; })
      .def_property_readonly("embed_dim", [](const PyClip& m) { return m.runner->embed_dim(); })
      .def_property_readonly("image_resolution", [](const PyClip& m) { return m.runner->image_resolution(); })
      .def_property_readonly("context_length", [](const PyClip& m) { return m.runner->config().context_length; })
      .def_property_readonly("logit_scale", [](PyClip& m) { return m.runner->engine().logit_scale(); })
      .def("__repr__", [](const PyClip& m) {
        return "<mmkit.ClipModel " + m.path + " embed_dim=" + std::to_string(m.runner->embed_dim()) + ">";
      });

  mod.def(
      "tokenize",
      [](const pb::object& texts, const std::string& vocab, const std::string& model) {
        std::vector<std::string> t = text_args(texts, "texts");
        if (vocab.empty() && model.empty())
          throw pb::value_error("tokenize needs vocab= (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + "
                                "merges.txt) or model= (a CLIP checkpoint with its tokenizer)");
        auto ids = call_released({vocab, model}, [&] { return tokenize_clip_texts(t, vocab, model); });
        return ids_to_numpy(ids);
      },
      pb::arg("texts"), pb::arg("vocab") = "", pb::arg("model") = "",
      "Token ids as `mmkit tokenize`: int32 [N, context] with the tokenizer of vocab (or model's) and model's "
      "context length (77 without a model).");
}

// The ClipModel of an index search (index_binding.cpp): the runner only.
ClipRunner& clip_runner_of(const pb::object& model) { return *model.cast<std::shared_ptr<PyClip>>()->runner; }
std::mutex& clip_mutex_of(const pb::object& model) { return *model.cast<std::shared_ptr<PyClip>>()->mu; }

}  // namespace mmkit::py
