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

StoredRun read_stored_run(const std::string& out_dir) {
  StoredRun r;
  r.checkpoint = out_dir + "/checkpoint.safetensors";
  if (!path_exists(r.checkpoint)) return r;
  r.exists = true;
  const io::SafetensorsFile ck = io::SafetensorsFile::open(r.checkpoint);
  const auto& meta = ck.metadata();
  if (meta.count("train_state")) r.options = TrainStateReader(meta.at("train_state"), r.checkpoint).get("options", r.options);
  try {
    if (meta.count("config")) r.config = nlohmann::json::parse(meta.at("config"));
  } catch (const std::exception& e) {
    fail("checkpoint ", r.checkpoint, ": unreadable config metadata (", e.what(), ")");
  }
  return r;
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

std::vector<nlohmann::json> TrainStateReader::records(const char* field) const {
  const nlohmann::json h = get<nlohmann::json>(field);
  if (!h.is_array()) fail_field(field, "not an array");
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < h.size(); ++i) {
    if (!h[i].is_object()) fail_field((std::string(field) + "[" + std::to_string(i) + "]").c_str(), "not an object");
    out.push_back(h[i]);
  }
  return out;
}

nlohmann::json run_state_json(const RunState& s, const std::string& weight_field, const std::string& metric_field) {
  return {{"step", s.step},         {"epoch", s.epoch},           {"batch_in_epoch", s.batch_in_epoch},
          {"epoch_seconds", s.epoch_seconds}, {"loss_sum", s.loss_sum}, {weight_field, s.weight},
          {metric_field, s.metric}, {"history", s.history}};
}

RunState read_run_state(const TrainStateReader& j, const std::string& weight_field, const std::string& metric_field) {
  RunState s;
  s.step = j.get<int64_t>("step");
  s.epoch = j.get<int>("epoch");
  s.batch_in_epoch = j.get<int64_t>("batch_in_epoch");
  s.epoch_seconds = j.get<double>("epoch_seconds", 0.0);
  s.loss_sum = j.get<double>("loss_sum");
  s.weight = j.get<double>(weight_field.c_str());
  s.metric = j.get<double>(metric_field.c_str());
  s.history = j.records("history");
  return s;
}

void write_history_files(const std::string& dir, const nlohmann::json& records, const std::vector<EpochPoint>& pts,
                         const std::string& title) {
  write_text_atomic(dir + "/history.json", records.dump(2) + "\n");
  if (!pts.empty()) plot_training_curves(dir + "/training_curves.png", pts, title);
}

}  // namespace mmkit::train
