// Regression tests for what the fuzz targets (fuzz/) found: each input that once escaped as a
// crash, a non-mmkit exception or a broken invariant, reduced to its essence, with the clear error
// it gets now. docs/ROBUSTNESS.md lists the findings with the runs that produced them.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "mmkit/image/preprocess.h"
#include "mmkit/io/layouts.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/models/vit.h"

using namespace mmkit;

namespace {
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const mmkit::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "non-mmkit exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected mmkit::Error";
  return "";
}

void expect_error(const std::string& msg, const std::string& fragment) {
  EXPECT_NE(msg.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << msg;
}
}  // namespace

// fuzz_config #1: a Hugging Face ViT config whose id2label values are not strings threw
// nlohmann's type_error ("type must be string, but is number") out of the reader.
TEST(FuzzRegressions, HfVitConfigTypes) {
  expect_error(error_of([] { VitConfig::from_hf_json(R"({"id2label":{"0":0,"dog":1}})", "config.json"); }),
               "config.json: id2label['0'] must be a string");
  expect_error(error_of([] { VitConfig::from_hf_json(R"({"layer_norm_eps":"small"})", "config.json"); }),
               "config.json: 'layer_norm_eps' must be a number");
  expect_error(error_of([] { VitConfig::from_hf_json(R"({"layer_norm_eps":0})", "config.json"); }),
               "layer_norm_eps must be positive and finite");
  // Missing labels in id2label fall back to the index, as transformers does.
  VitConfig c = VitConfig::from_hf_json(R"({"id2label":{"0":"cat","5":"x"}})", "config.json");
  EXPECT_EQ(c.class_names, (std::vector<std::string>{"cat", "1"}));
}

TEST(FuzzRegressions, HfClipConfigTypes) {
  expect_error(error_of([] { ClipConfig::from_hf_json(R"({"vision_config":{"hidden_act":7}})", "c.json"); }),
               "c.json: field 'hidden_act' must be a string");
  expect_error(error_of([] { ClipConfig::from_hf_json(R"({"vision_config":{"layer_norm_eps":[1]}})", "c.json"); }),
               "c.json: field 'layer_norm_eps' must be a number");
  expect_error(error_of([] { ClipConfig::from_hf_json("5", "c.json"); }), "c.json is not a JSON object");
  expect_error(error_of([] { ClipConfig::from_hf_json(R"({"text_config":[]})", "c.json"); }),
               "c.json: 'text_config' must be an object");
}

// Sizes whose products overflow int64 (patch grid, parameter shapes) are refused by validate().
TEST(FuzzRegressions, ConfigSizesAreBounded) {
  expect_error(error_of([] {
                 VitConfig::from_json(R"({"image_size":4611686018427387904,"patch_size":1,"channels":1,"dim":8,)"
                                      R"("depth":1,"heads":1,"mlp_dim":8,"num_classes":2})");
               }),
               "image_size 4611686018427387904 is larger than the supported maximum 16384");
  ClipConfig c;
  c.vocab_size = int64_t(1) << 40;
  expect_error(error_of([&] { c.validate(); }), "vocab_size 1099511627776 is larger than the supported maximum");
}

// Review while fuzzing fuzz_image: a 103-byte 1x4464 PNG made preprocessing at size 224 allocate a
// 224x999936 image (690 MB RSS, 4.3 s) before cropping 224x224 out of it. Now refused up front.
TEST(FuzzRegressions, ElongatedImageResizeBomb) {
  Image tall(1, 4464, 3);
  std::vector<float> x(3 * 224 * 224);
  expect_error(error_of([&] { preprocess_image(tall, preprocess_preset("clip", 224), x.data()); }),
               "image 1x4464 is too elongated: resizing its shorter side to 224 gives 224x999936 = 223985664 pixels "
               "(limit 16777216)");
  // 1:300 is still fine (224x67200 = 15 Mpixels), in both orientations.
  EXPECT_EQ(shorter_side_resize_size(1, 300, 224), (std::array<int, 2>{224, 67200}));
  EXPECT_EQ(shorter_side_resize_size(300, 1, 224), (std::array<int, 2>{67200, 224}));
}

// Review of the layout tables while fuzzing fuzz_safetensors (whose 4 KB inputs cannot reach it):
// a tensor named "vision_model.encoder.layers.<100000 digits>.self_attn.q_proj.weight" made
// std::regex's recursive matcher overflow the stack in io::remap (segfault in `mmkit embed` /
// `classify`). Names over kMaxTensorName bytes are now refused by the parser, and not written.
TEST(FuzzRegressions, HugeTensorNameRefusedBeforeRegex) {
  const std::string name = "vision_model.encoder.layers." + std::string(100000, '2') + ".self_attn.q_proj.weight";
  const std::string header = "{\"" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&bytes[0], &n, 8);
  bytes += header + std::string(4, '\0');
  expect_error(error_of([&] { io::SafetensorsFile::from_memory(bytes.data(), bytes.size(), "big.safetensors"); }),
               "big.safetensors: tensor name of 100052 bytes (starting 'vision_model.encoder.layers.222222222222...') "
               "is longer than the 1024-byte limit");
  // The longest accepted name still goes through every layout table.
  const std::string ok_name = "vision_model.encoder.layers." + std::string(1024 - 52, '2') + ".self_attn.q_proj.weight";
  ASSERT_EQ(ok_name.size(), 1024u);
  const std::string ok_header = "{\"" + ok_name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string ok(8, '\0');
  const uint64_t m = ok_header.size();
  std::memcpy(&ok[0], &m, 8);
  ok += ok_header + std::string(4, '\0');
  auto f = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::from_memory(ok.data(), ok.size(), "ok"));
  for (io::Layout l : {io::Layout::mmkit, io::Layout::hf_clip, io::Layout::torchvision_vit, io::Layout::hf_vit})
    EXPECT_NO_THROW(io::remap(f, l));
  float v = 1.f;
  expect_error(error_of([&] { io::write_safetensors("/tmp/never_written.safetensors", {{name, DType::f32, {1}, &v}}); }),
               "name longer than 1024 bytes");
}
