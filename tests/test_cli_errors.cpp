// Command-line error paths through the real `mmkit` binary: missing files, a
// folder with nothing decodable, commands without a vocabulary, zero-shot on a
// bad image. Every case must exit 1 with a message naming the problem, never
// crash (signals give exit code 1000 here) or hang. Hostile file contents
// (safetensors, images, texts) are the table in tests/test_hostile_inputs.cpp.
#include <gtest/gtest.h>

#include "test_util.h"

using namespace mmkit;

using test::RunResult;
using test::tiny_clip;
using test::write_bytes;

namespace {
RunResult run(const std::string& args, const std::string& dir) { return test::run_mmkit(args, dir); }
}  // namespace

TEST(CliErrors, MissingFilesFoldersAndVocabulary) {
  char tmpl[] = "/tmp/mmkit_cli_XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string model = tiny_clip(dir);
  write_bytes(dir + "/garbage.png", "\x89PNG\r\n\x1a\ngarbage");
  RunResult r = run("embed --model " + model + " --image " + dir + "/garbage.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("garbage.png"), std::string::npos) << r.err;
  r = run("embed --model " + model + " --image " + dir + "/missing.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("missing.png"), std::string::npos) << r.err;
  r = run("zero-shot --model " + model + " --labels , " + dir + "/garbage.png", dir);
  EXPECT_EQ(r.code, 1) << r.err;
  // Folder embedding skips and reports bad files instead of failing.
  r = run("embed --model " + model + " --images " + dir + " --out " + dir + "/e.jsonl", dir);
  EXPECT_EQ(r.code, 1) << r.err;  // no decodable image at all: a clear error
  r = run("embed --model " + model + " --text hello", dir);  // no vocab beside the model
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("--vocab"), std::string::npos) << r.err;
}
