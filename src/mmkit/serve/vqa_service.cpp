#include "mmkit/serve/vqa_service.h"

#include "mmkit/util/file_util.h"

namespace mmkit::serve {

VqaService::VqaService(Vqa model, std::string name, std::mutex* engine)
    : m_(std::move(model)), name_(std::move(name)), engine_(engine ? engine : &own_) {}

std::unique_ptr<VqaService> VqaService::open(const std::string& path, std::mutex* engine) {
  return std::make_unique<VqaService>(load_vqa(path), model_display_name(path), engine);
}

VqaAnswer VqaService::answer(const Image& image, const std::string& question, int top_k) {
  std::lock_guard<std::mutex> l(*engine_);
  return answer_question(m_, image, question, nullptr, top_k);
}

}  // namespace mmkit::serve
