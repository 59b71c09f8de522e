// A loaded VQA model (models/vqa.h) shared by a server's request threads.
// Each request checks its question (typed problems, before any image work)
// and then answers under a mutex: one forward at a time, each using every
// core through OpenMP (the same rule ClipService's batchers follow; pass its
// engine_mutex() so VQA forwards never overlap CLIP's either).
//
//   auto vqa = mmkit::serve::VqaService::open("runs/soc", &clip.engine_mutex());
//   if (auto p = vqa->check(q)) ...;                 // p.kind, p.word, p.message
//   mmkit::VqaAnswer a = vqa->answer(img, q, 5);    // == answer_question(load_vqa(...), img, q, nullptr, 5)
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "mmkit/infer/vqa_answer.h"

namespace mmkit::serve {

class VqaService {
 public:
  // engine: the mutex every model forward in the process holds; null: a mutex of its own.
  VqaService(Vqa model, std::string name, std::mutex* engine = nullptr);
  // DIR/model.safetensors or a .safetensors file, as `mmkit vqa --model` takes.
  static std::unique_ptr<VqaService> open(const std::string& path, std::mutex* engine = nullptr);

  QuestionProblem check(const std::string& question) const { return check_question(m_, question); }
  // top_k answers (clamped to 1..num_answers()), most probable first. Throws
  // mmkit::Error for a question check() rejects.
  VqaAnswer answer(const Image& image, const std::string& question, int top_k);

  const std::string& name() const { return name_; }
  const VqaConfig& config() const { return m_.cfg; }
  int64_t num_answers() const { return int64_t(m_.cfg.answers.size()); }

 private:
  Vqa m_;
  std::string name_;
  std::mutex own_;
  std::mutex* engine_;
};

}  // namespace mmkit::serve
