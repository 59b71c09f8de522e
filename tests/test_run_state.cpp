// train/run_dir.h's RunState: the part of the checkpoint metadata
// "train_state" the training loop owns survives a JSON round trip with the
// checkpoint format's field names (the task's names for its running sums),
// and every unreadable field fails with a message naming the checkpoint and
// the field.
#include <gtest/gtest.h>

#include <fstream>

#include "mmkit/train/run_dir.h"
#include "test_util.h"

using namespace mmkit;
using namespace mmkit::train;

namespace {

RunState read(const std::string& text) {
  TrainStateReader j(text, "run/checkpoint.safetensors");
  return read_run_state(j, "seen", "correct");
}

}  // namespace

TEST(RunState, RoundTripWithCheckpointFieldNames) {
  RunState s;
  s.step = 1234567890123;
  s.epoch = 3;
  s.batch_in_epoch = 17;
  s.epoch_seconds = 12.5;
  s.loss_sum = 42.25;
  s.weight = 640;
  s.metric = 321;
  s.history = {{{"epoch", 1}, {"loss", 0.75}}, {{"epoch", 2}, {"loss", 0.5}}, {{"epoch", 3}, {"loss", 0.25}}};
  nlohmann::json j = run_state_json(s, "seen", "correct");
  // The names written by every trainer since the first checkpoint format.
  for (const char* k : {"step", "epoch", "batch_in_epoch", "epoch_seconds", "history", "loss_sum", "seen", "correct"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["history"][1], nlohmann::json({{"epoch", 2}, {"loss", 0.5}}));
  RunState r = read(j.dump());
  EXPECT_EQ(r.step, s.step);
  EXPECT_EQ(r.epoch, s.epoch);
  EXPECT_EQ(r.batch_in_epoch, s.batch_in_epoch);
  EXPECT_EQ(r.epoch_seconds, s.epoch_seconds);
  EXPECT_EQ(r.loss_sum, s.loss_sum);
  EXPECT_EQ(r.weight, s.weight);
  EXPECT_EQ(r.metric, s.metric);
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.history[2], s.history[2]);
  // An empty history is an empty array, not null.
  EXPECT_TRUE(run_state_json(RunState{}, "seen", "correct")["history"].is_array());
  // Another task's names (the captioner's "tokens", VQA's "acc_sum").
  nlohmann::json k = run_state_json(s, "tokens", "acc_sum");
  EXPECT_EQ(k["tokens"], 640.0);
  EXPECT_EQ(k["acc_sum"], 321.0);
  EXPECT_FALSE(k.contains("seen"));
}

// Checkpoints written before the shared loop stored integer sums; they still resume.
TEST(RunState, ReadsCheckpointsOfTheFormerTrainers) {
  RunState r = read(R"({"step": 5, "epoch": 0, "batch_in_epoch": 5, "history": [], "loss_sum": 1,
                        "seen": 640, "correct": 123, "options": {"epochs": 3}})");
  EXPECT_EQ(r.step, 5);
  EXPECT_EQ(r.epoch_seconds, 0.0);  // optional
  EXPECT_EQ(r.weight, 640.0);
  EXPECT_EQ(r.metric, 123.0);
}

TEST(RunState, ErrorsNameTheCheckpointAndTheField) {
  const std::string pre = "checkpoint run/checkpoint.safetensors: unreadable train_state metadata (";
  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  const std::string sums = R"("loss_sum": 0, "seen": 0, "correct": 0)";
  std::string e = test::error_of([] { read("{\"step\": 1"); });
  EXPECT_TRUE(has(e, pre)) << e;
  e = test::error_of([] { read("[1, 2]"); });
  EXPECT_TRUE(has(e, pre + "not a JSON object)")) << e;
  e = test::error_of([&] { read(R"({"epoch": 0, "batch_in_epoch": 0, "history": [], )" + sums + "}"); });
  EXPECT_TRUE(has(e, pre + "field 'step'")) << e;
  e = test::error_of([&] { read(R"({"step": "ten", "epoch": 0, "batch_in_epoch": 0, "history": [], )" + sums + "}"); });
  EXPECT_TRUE(has(e, pre + "field 'step'")) << e;
  e = test::error_of([&] {
    read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "epoch_seconds": "x", "history": [], )" + sums + "}");
  });
  EXPECT_TRUE(has(e, pre + "field 'epoch_seconds'")) << e;
  e = test::error_of([&] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "history": {}, )" + sums + "}"); });
  EXPECT_TRUE(has(e, pre + "field 'history': not an array")) << e;
  e = test::error_of([&] { read(R"({"step": 1, "epoch": 2, "batch_in_epoch": 0, "history": [{"epoch": 1}, 7], )" + sums + "}"); });
  EXPECT_TRUE(has(e, pre + "field 'history[1]': not an object")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "history": [], "seen": 0, "correct": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'loss_sum'")) << e;
  e = test::error_of([] { read(R"({"step": 1, "epoch": 0, "batch_in_epoch": 0, "history": [], "loss_sum": 0, "correct": 0})"); });
  EXPECT_TRUE(has(e, pre + "field 'seen'")) << e;
}

TEST(RunState, HistoryFiles) {
  const std::string dir = test::make_temp_dir("run_state");
  nlohmann::json h = nlohmann::json::array({{{"epoch", 1}, {"loss", 0.75}}, {{"epoch", 2}, {"loss", 0.5}}});
  std::vector<EpochPoint> pts(2);
  pts[0].epoch = 1;
  pts[0].train_loss = 0.75;
  pts[1].epoch = 2;
  pts[1].train_loss = 0.5;
  write_history_files(dir, h, pts, "test");
  std::ifstream f(dir + "/history.json");
  nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1], h[1]);
  EXPECT_TRUE(std::ifstream(dir + "/training_curves.png").good());
}
