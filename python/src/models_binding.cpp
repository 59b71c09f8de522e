// mmkit.VitModel, mmkit.VqaModel, mmkit.CaptionModel: the classifiers, VQA and
// captioning over the functions `mmkit classify`, `mmkit vqa` and `mmkit
// caption` call (infer/classify, infer/vqa_answer, infer/caption_images).
#include <pybind11/stl.h>

#include <memory>
#include <mutex>

#include "bindings.h"
#include "mmkit/infer/caption_images.h"
#include "mmkit/infer/classify.h"
#include "mmkit/infer/vqa_answer.h"
#include "mmkit/models/captioner.h"
#include "mmkit/models/model_kind.h"
#include "mmkit/models/vit.h"
#include "mmkit/models/vqa.h"
#include "py_common.h"

namespace mmkit::py {

namespace {

// A loaded model and the mutex that serialises its calls (the forward runs on
// an autograd graph with the tape off; buffers are per call, the weights shared).
template <class M>
struct Loaded {
  std::string path;
  std::unique_ptr<M> model;
  std::unique_ptr<std::mutex> mu = std::make_unique<std::mutex>();
};
using PyVit = Loaded<Vit>;
using PyVqa = Loaded<Vqa>;
using PyCaption = Loaded<CaptionModel>;

std::shared_ptr<PyVit> open_vit(const pb::handle& path_obj, int64_t heads, const pb::object& labels,
                                const std::string& preprocess) {
  auto m = std::make_shared<PyVit>();
  m->path = path_arg(path_obj, "path");
  call_released({m->path}, [&] { m->model = std::make_unique<Vit>(load_vit(m->path, heads)); });
  VitConfig& c = m->model->cfg;
  if (!labels.is_none()) {  // as `mmkit classify --labels`
    std::vector<std::string> names = text_args(labels, "labels");
    if (int64_t(names.size()) != c.num_classes)
      throw pb::value_error("labels: " + std::to_string(names.size()) + " names but the model has " +
                            std::to_string(c.num_classes) + " classes (one name per class, in class order)");
    c.class_names = names;
  }
  if (!preprocess.empty()) c.preprocess = preprocess == "none" ? "" : preprocess;
  return m;
}

pb::list classify(PyVit& m, const pb::object& images, int top_k) {
  std::vector<ImageArg> args = image_args(images, "images");
  std::vector<Classification> res = call_released(paths_of(args), [&] {
    std::vector<Image> decoded = decode_all(args);
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return classify_images(*m.model, decoded);
  });
  const auto& names = m.model->cfg.class_names;
  auto name = [&](size_t k) { return k < names.size() ? names[k] : std::to_string(k); };
  pb::list out;
  for (const Classification& c : res) {
    pb::list top;
    for (size_t k : top_classes(c, top_k)) top.append(pb::make_tuple(name(k), c.probs[k]));
    pb::dict d;
    d["label"] = c.name;
    d["index"] = c.label;
    d["probability"] = c.probability;
    d["top"] = top;
    d["probs"] = vector_to_numpy(c.probs);
    d["logits"] = vector_to_numpy(c.logits);
    out.append(d);
  }
  return out;
}

std::shared_ptr<PyVqa> open_vqa(const pb::handle& path_obj) {
  auto m = std::make_shared<PyVqa>();
  m->path = path_arg(path_obj, "path");
  call_released({m->path}, [&] { m->model = std::make_unique<Vqa>(load_vqa(m->path)); });
  return m;
}

pb::dict answer(PyVqa& m, const pb::object& image, const pb::object& question_obj, int top_k, bool attention) {
  ImageArg arg = image_arg(image, "image");
  const std::string question = text_arg(question_obj, "question");
  if (top_k < 1) throw pb::value_error("top_k must be >= 1, got " + std::to_string(top_k));
  std::vector<PatchAttention> maps;
  VqaAnswer a = call_released(paths_of({arg}), [&] {
    if (QuestionProblem p = check_question(*m.model, question)) fail(p.message);  // before reading the image
    std::vector<ImageArg> one{std::move(arg)};
    Image img = std::move(decode_all(one)[0]);
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return answer_question(*m.model, img, question, attention ? &maps : nullptr, top_k);
  });
  pb::list top;
  for (auto& [s, p] : a.top) top.append(pb::make_tuple(s, p));
  pb::dict d;
  d["answer"] = a.answer;
  d["probability"] = a.probability;
  d["top"] = top;
  if (attention) {
    pb::list l;
    for (const PatchAttention& pa : maps) {
      pb::array_t<float> g = vector_to_numpy(pa.map);
      l.append(pb::make_tuple(pa.label, g.reshape({pb::ssize_t(pa.grid), pb::ssize_t(pa.grid)})));
    }
    d["attention"] = l;
  }
  return d;
}

std::shared_ptr<PyCaption> open_captioner(const pb::handle& path_obj) {
  auto m = std::make_shared<PyCaption>();
  m->path = path_arg(path_obj, "path");
  call_released({m->path}, [&] { m->model = std::make_unique<CaptionModel>(load_captioner(m->path)); });
  return m;
}

pb::list caption(PyCaption& m, const pb::object& images, int beam, float length_penalty, int64_t max_tokens,
                 bool attention) {
  std::vector<ImageArg> args = image_args(images, "images");
  GenerateOptions g;
  g.beam = beam;
  g.length_penalty = length_penalty;
  g.max_tokens = max_tokens;
  g.attention = attention;
  std::vector<ImageCaption> caps = call_released(paths_of(args), [&] {
    check_generate_options(m.model->model, g);  // option errors before reading the images
    std::vector<Image> decoded = decode_all(args);
    std::lock_guard<std::mutex> lock(*m.mu);
    apply_threads();
    return caption_images(*m.model, decoded, g);
  });
  pb::list out;
  for (const ImageCaption& c : caps) {
    pb::dict d;
    d["caption"] = c.text;
    d["log_prob"] = c.gen.log_prob;
    d["score"] = c.gen.score;
    d["finished"] = c.gen.finished;
    d["tokens"] = c.gen.tokens;
    if (attention) {  // [steps, M]: last decoder layer's cross-attention per generated token (EOS included)
      const pb::ssize_t M = pb::ssize_t(c.gen.memory_tokens), steps = M ? pb::ssize_t(c.gen.attention.size()) / M : 0;
      d["attention"] = vector_to_numpy(c.gen.attention).reshape({steps, M});
    }
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_models(pb::module_& mod) {
  pb::class_<PyVit, std::shared_ptr<PyVit>>(mod, "VitModel", "A ViT classifier (mmkit, torchvision or Hugging Face file).")
      .def(pb::init(&open_vit), pb::arg("path"), pb::arg("heads") = 0, pb::arg("labels") = pb::none(),
           pb::arg("preprocess") = "",
           "Open a ViT classifier. heads: for checkpoints that do not record them (torchvision); labels: class "
           "names in class order (default: the names stored in the model); preprocess: 'imagenet', 'clip' or "
           "'none' (default: the model's own). As `mmkit classify`.")
      .def("classify", &classify, pb::arg("images"), pb::arg("top_k") = 5,
           R"(Labels for images (paths, PIL images, uint8 arrays): one dict per image with label, index,
probability, top (a list of (label, probability), most probable first), probs and logits (float32 [K]).)")
      .def_property_readonly("path", [](const PyVit& m) { return m.path; })
      .def_property_readonly("kind", [](const PyVit&) { return "vit"; })
      .def_property_readonly("class_names", [](const PyVit& m) { return m.model->cfg.class_names; })
      .def_property_readonly("num_classes", [](const PyVit& m) { return m.model->cfg.num_classes; })
      .def("__repr__", [](const PyVit& m) { return "<mmkit.VitModel " + m.path + ">"; });

  pb::class_<PyVqa, std::shared_ptr<PyVqa>>(mod, "VqaModel", "A VQA model trained by `mmkit train vqa`.")
      .def(pb::init(&open_vqa), pb::arg("path"))
      .def("answer", &answer, pb::arg("image"), pb::arg("question"), pb::arg("top_k") = 5, pb::arg("attention") = false,
           R"(Answer a question about one image, as `mmkit vqa`: a dict with answer, probability, top (a list
of (answer, probability), most probable first) and, with attention=True, attention: a list of
(label, float32 [G, G]) maps (each fusion layer's text->image attention, then each hop head's hops).)")
      .def_property_readonly("path", [](const PyVqa& m) { return m.path; })
      .def_property_readonly("kind", [](const PyVqa&) { return "vqa"; })
      .def_property_readonly("answers", [](const PyVqa& m) { return m.model->cfg.answers; })
      .def("__repr__", [](const PyVqa& m) { return "<mmkit.VqaModel " + m.path + ">"; });

  pb::class_<PyCaption, std::shared_ptr<PyCaption>>(mod, "CaptionModel", "An image captioner trained by `mmkit train caption`.")
      .def(pb::init(&open_captioner), pb::arg("path"))
      .def("caption", &caption, pb::arg("images"), pb::arg("beam") = 1, pb::arg("length_penalty") = 0.6f,
           pb::arg("max_tokens") = 0, pb::arg("attention") = false,
           R"(Captions, as `mmkit caption`: one dict per image with caption, log_prob, score, finished,
tokens and, with attention=True, attention: float32 [steps, M] (the last decoder layer's
cross-attention for each generated token, EOS included). beam 1 is greedy; max_tokens 0: the
model's maximum length.)")
      .def_property_readonly("path", [](const PyCaption& m) { return m.path; })
      .def_property_readonly("kind", [](const PyCaption&) { return "caption"; })
      .def("__repr__", [](const PyCaption& m) { return "<mmkit.CaptionModel " + m.path + ">"; });

  mod.def(
      "model_kind",
      [](const pb::handle& path_obj) {
        const std::string path = path_arg(path_obj, "path");
        return std::string(call_released({path}, [&] { return model_kind_name(detect_model_kind(path)); }));
      },
      pb::arg("path"), "'clip', 'vit', 'vqa' or 'caption': the kind of model a file (or run folder) holds.");
}

}  // namespace mmkit::py
