#include "mmkit/train/run_dir.h"

#include <cstring>

#include "mmkit/util/file_util.h"

namespace mmkit::train {

std::vector<io::NamedTensor> optimizer_tensors(AdamW& opt) {
  std::vector<io::NamedTensor> extra;
  const auto& ps = opt.params();
  for (size_t k = 0; k < ps.size(); ++k) {
    extra.push_back({"optim.exp_avg." + ps[k]->name, opt.exp_avg()[k]});
    extra.push_back({"optim.exp_avg_sq." + ps[k]->name, opt.exp_avg_sq()[k]});
  }
  return extra;
}

void load_optimizer_state(const io::SafetensorsFile& ck, AdamW& opt, int64_t steps) {
  const auto& ps = opt.params();
  for (size_t k = 0; k < ps.size(); ++k) {
    for (auto [prefix, buf] : {std::pair{"optim.exp_avg.", &opt.exp_avg()[k]},
                               std::pair{"optim.exp_avg_sq.", &opt.exp_avg_sq()[k]}}) {
      Tensor t = io::read_tensor_f32(ck, prefix + ps[k]->name);
      MMKIT_CHECK(t.shape() == buf->shape(), ck.path(), ": optimizer state for ", ps[k]->name,
                  " has shape ", t.shape().str(), ", expected ", buf->shape().str());
      std::memcpy(buf->raw(), t.raw(), t.nbytes());
    }
  }
  opt.set_steps(steps);
}

void resume_from_checkpoint(const io::SafetensorsFile& ck, const std::vector<Parameter*>& params, AdamW& opt,
                            int64_t steps) {
  io::LoadOptions lo;
  lo.ignore_prefixes = {"optim."};
  io::load_parameters(ck, params, lo);
  load_optimizer_state(ck, opt, steps);
}

TrainStateReader::TrainStateReader(const std::string& text, const std::string& path) : path_(path) {
  try {
    j_ = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("checkpoint ", path_, ": unreadable train_state metadata (", e.what(), ")");
  }
  if (!j_.is_object()) fail("checkpoint ", path_, ": unreadable train_state metadata (not a JSON object)");
}

void TrainStateReader::fail_field(const char* field, const char* what) const {
  fail("checkpoint ", path_, ": unreadable train_state metadata (field '", field, "': ", what, ")");
}

void write_history_files(const std::string& dir, const nlohmann::json& records, const std::vector<EpochPoint>& pts,
                         const std::string& title) {
  write_text_atomic(dir + "/history.json", records.dump(2) + "\n");
  if (!pts.empty()) plot_training_curves(dir + "/training_curves.png", pts, title);
}

}  // namespace mmkit::train
