// Hostile inputs through the real `mmkit` binary: every case must exit
// non-zero (1) with a message naming the problem, never crash (signals give
// exit codes > 128 here) or hang. The CLIP model is a tiny random one the
// test writes itself; text cases need ../shared/clip (skipped otherwise).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"
#include "test_util.h"

using namespace mmkit;

using test::RunResult;
using test::safetensors_bytes;
using test::tiny_clip;
using test::write_bytes;

namespace {
RunResult run(const std::string& args, const std::string& dir) { return test::run_mmkit(args, dir); }
}  // namespace

TEST(CliErrors, HostileModelFiles) {
  char tmpl[] = "/tmp/mmkit_cli_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string img = dir + "/img.png";
  write_bytes(img, "not really a png");
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  } cases[] = {
      {"header_beyond_file", std::string("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10), "header"},
      {"overlapping", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "overlap"},
      {"out_of_range", safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "a"},
      {"unknown_dtype", safetensors_bytes(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4), "F99"},
      {"not_json", safetensors_bytes("{nope", 0), "JSON"},
      {"empty", "", "safetensors"},
  };
  for (auto& c : cases) {
    std::string path = dir + "/" + c.name + ".safetensors";
    write_bytes(path, c.bytes);
    RunResult r = run("embed --model " + path + " --image " + img, dir);
    EXPECT_EQ(r.code, 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("mmkit: error:"), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
  }
}

TEST(CliErrors, HostileImagesAndTexts) {
  char tmpl[] = "/tmp/mmkit_cli_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string model = tiny_clip(dir);
  write_bytes(dir + "/garbage.png", "\x89PNG\r\n\x1a\ngarbage");
  write_bytes(dir + "/text.jpg", "hello");
  RunResult r = run("embed --model " + model + " --image " + dir + "/garbage.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("garbage.png"), std::string::npos) << r.err;
  r = run("embed --model " + model + " --image " + dir + "/text.jpg", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  r = run("embed --model " + model + " --image " + dir + "/missing.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("missing.png"), std::string::npos) << r.err;
  r = run("zero-shot --model " + model + " --labels , " + dir + "/garbage.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  // Folder embedding skips and reports bad files instead of failing.
  r = run("embed --model " + model + " --images " + dir + " --out " + dir + "/e.jsonl", dir);
  EXPECT_EQ(r.code, 1) << r.err;  // no decodable image at all: a clear error
  std::string vocab = std::string(MMKIT_SOURCE_DIR) + "/../shared/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!test::file_exists(vocab)) GTEST_SKIP() << "../shared/clip not present; text cases skipped";
  // The shell passes the raw byte 0xff (printf's octal escape).
  r = run("embed --model " + model + " --vocab " + vocab + " --text \"$(printf 'bad \\377 byte')\"", dir);
  std::string cmd_err = r.err;
  EXPECT_EQ(r.code, 1) << cmd_err;
  EXPECT_NE(cmd_err.find("UTF-8"), std::string::npos) << cmd_err;
  r = run("embed --model " + model + " --text hello", dir);  // no vocab beside the model
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("--vocab"), std::string::npos) << r.err;
}
