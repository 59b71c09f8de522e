// train/run_dir.h's RunPosition: the shared part of every trainer's
// "train_state" checkpoint metadata survives a JSON round trip with the
// checkpoint format's field names, and every unreadable field fails with a
// message naming the checkpoint and the field (history entries by index).
#include <gtest/gtest.h>

#include <fstream>

#include "mmkit/train/run_dir.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::train;

namespace {

struct Rec {
  int epoch = 0;
  double loss = 0;
};
nlohmann::json rec_json(const Rec& r) { return {{"epoch", r.epoch}, {"loss", r.loss}}; }
Rec rec_from_json(const nlohmann::json& j) { return {j.at("epoch").get<int>(), j.at("loss").get<double>()}; }

// A trainer's state: the position plus its own running sums.
struct State : RunPosition<Rec> {
  double loss_sum = 0;
};

State read(const std::string& text) {
  TrainStateReader j(text, "run/checkpoint.safetensors");
  State s;
  j.read_position(&s, rec_from_json);
  s.loss_sum = j.get<double>("loss_sum");
  return s;
}

}  // namespace

TEST(RunPosition, RoundTripWithCheckpointFieldNames) {
  State s;
  s.step = 1234567890123;
  s.epoch = 3;
  s.batch_in_epoch = 17;
  s.epoch_seconds = 12.5;
  s.history = {{1, 0.75}, {2, 0.5}, {3, 0.25}};
  s.loss_sum = 42.25;
  nlohmann::json j = run_position_json(s, rec_json);
  j["loss_sum"] = s.loss_sum;
  // The names written by every trainer since the first checkpoint format.
  for (const char* k : {"step", "epoch", "batch_in_epoch", "epoch_seconds", "history"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["history"][1], nlohmann::json({{"epoch", 2}, {"loss", 0.5}}));
  State r = read(j.dump());
  EXPECT_EQ(r.step, s.step);
  EXPECT_EQ(r.epoch, s.epoch);
  EXPECT_EQ(r.batch_in_epoch, s.batch_in_epoch);
  EXPECT_EQ(r.epoch_seconds, s.epoch_seconds);
  EXPECT_EQ(r.loss_sum, s.loss_sum);
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.history[2].epoch, 3);
  EXPECT_EQ(r.history[2].loss, 0.25);
  // An empty history is an empty array, not null.
  EXPECT_TRUE(run_position_json(State{}, rec_json)["history"].is_array());
}

TEST(RunPosition, EpochSecondsIsOptional) {
  State r = read(R"({"step": 5, "epoch": 0, "batch_in_epoch": 5, "history": [], "loss_sum": 1})");
  EXPECT_EQ(r.step, 5);
  EXPECT_EQ(r.epoch_seconds, 0.0);
}

TEST(RunPosition, ErrorsNameTheCheckpointAndTheField) {
  const std::string pre = "checkpoint run/checkpoint.safetensors: unreadable train_state metadata (";
  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  std::string e = test::error_of([] { read("{\"step\": 1"); });
  EXPECT_TRUE(has(e, pre)) << e;
  e = test::error_of([] { read("[1, 2]"); });
  EXPECT_TRUE(has(e, pre + "not a JSON object)")) << e;
  e = test::error_of([] { read(R"({"epoch": 0, "batch_in_epoch": 0, "history": [], "loss_sum": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'step'")) << e;
  e = test::error_of([] { read(R"({"step": "ten", "epoch": 0, "batch_in_epoch": 0, "history": [], "loss_sum": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'step'")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "epoch_seconds": "x", "history": [], "loss_sum": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'epoch_seconds'")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "history": {}, "loss_sum": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'history': not an array")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 2, "batch_in_epoch": 0, "history": [{"epoch": 1, "loss": 1}, {"epoch": 2}], "loss_sum": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'history[1]'")) << e;
  EXPECT_TRUE(has(e, "loss")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "history": []})"); });
  EXPECT_TRUE(has(e, pre + "field 'loss_sum'")) << e;
}

TEST(RunPosition, HistoryFiles) {
  const std::string dir = test::make_temp_dir("run_position");
  std::vector<Rec> h = {{1, 0.75}, {2, 0.5}};
  write_history(dir, h, rec_json, [](const Rec& r) { EpochPoint p; p.epoch = r.epoch; p.train_loss = r.loss; return p; },
                "test");
  std::ifstream f(dir + "/history.json");
  nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1], rec_json(h[1]));
  EXPECT_TRUE(std::ifstream(dir + "/training_curves.png").good());
}
