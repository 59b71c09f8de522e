#include "mmkit/serve/caption_service.h"

#include "mmkit/util/file_util.h"

namespace mmkit::serve {

CaptionService::CaptionService(CaptionModel model, std::string name, std::mutex* engine)
    : m_(std::move(model)), name_(std::move(name)), engine_(engine ? engine : &own_) {}

std::unique_ptr<CaptionService> CaptionService::open(const std::string& path, std::mutex* engine) {
  return std::make_unique<CaptionService>(load_captioner(path), model_display_name(path), engine);
}

ImageCaption CaptionService::caption(const Image& image, const GenerateOptions& g) {
  check_generate_options(m_.model, g);
  std::lock_guard<std::mutex> l(*engine_);
  return caption_images(m_, {image}, g)[0];
}

}  // namespace mmkit::serve
