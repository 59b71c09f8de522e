// Issue #24, acceptance 2: a walk over every command of the `mmkit` command line (read from the
// binary itself through `mmkit commands --json`), failing on an option without a help text or
// without its default, on an option that swallows the arguments after it, on two names for one
// concept of docs/CLI.md's conventions table (or another default, or two help texts for it), and
// on a `--model` (or `--init`, `--vqa`, `--caption`, `--classifier`) that refuses a run folder.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"
#include "mmkit/data/fashion_mnist.h"
#include "test_util.h"

using namespace mmkit;
using nlohmann::json;

namespace {

// Runs `mmkit ARGS` (stdout to `out`, stderr to `err`; 10 min at most); the exit code.
int run_cli(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
  const std::string dir = test::make_temp_dir("walk_run");
  const std::string cmd = "timeout 600 " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + args + " > " + dir +
                          "/out 2> " + dir + "/err";
  int st = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  if (out) *out = slurp(dir + "/out");
  if (err) *err = slurp(dir + "/err");
  std::filesystem::remove_all(dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1000;
}

json command_spec() {
  std::string out, err;
  EXPECT_EQ(run_cli("commands --json", &out, &err), 0) << err;
  return json::parse(out);
}

struct Convention {
  std::string concept, name, def;  // def: "" (none given) or "per model": not checked
  std::vector<std::string> scopes;  // "train *", "*", "eval vit"
  std::vector<std::string> never;
};

// `text` -> the backticked words in it.
std::vector<std::string> ticked(const std::string& text) {
  std::vector<std::string> out;
  std::regex re("`([^`]*)`");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

// The table under "## Conventions" in docs/CLI.md: | concept | option | default | commands | never |
std::vector<Convention> conventions() {
  std::ifstream f(std::string(MMKIT_SOURCE_DIR) + "/docs/CLI.md");
  std::vector<Convention> out;
  bool in = false;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("## ", 0) == 0) in = line == "## Conventions";
    if (!in || line.rfind("| ", 0) != 0 || line.rfind("| concept", 0) == 0) continue;
    std::vector<std::string> cells;  // split at each '|' that is not "\|" (a bar inside a cell)
    std::string cell;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '|' && line[i - 1] != '\\') {
        cells.push_back(cell);
        cell.clear();
      } else {
        cell += line[i];
      }
    }
    if (cells.size() != 5) continue;
    Convention c;
    c.concept = cells[0];
    auto opt = ticked(cells[1]);
    if (opt.empty()) continue;
    c.name = opt[0].substr(0, opt[0].find(' '));
    auto d = ticked(cells[2]);
    c.def = d.empty() ? (cells[2].find("per model") != std::string::npos ? "per model" : "") : d[0];
    c.scopes = ticked(cells[3]);
    c.never = ticked(cells[4]);
    out.push_back(c);
  }
  return out;
}

bool in_scope(const std::string& command, const std::vector<std::string>& scopes) {
  for (const auto& s : scopes) {
    if (s == "*" || s == command) return true;
    if (s.size() > 2 && s.compare(s.size() - 2, 2, " *") == 0 && command.rfind(s.substr(0, s.size() - 1), 0) == 0)
      return true;
  }
  return false;
}

bool has_name(const json& opt, const std::string& name) {
  for (const auto& n : opt["names"])
    if (n == name) return true;
  return false;
}

}  // namespace

TEST(CliWalk, EveryOptionIsDescribedWithItsDefault) {
  json spec = command_spec();
  ASSERT_GT(spec.size(), 20u);
  for (const auto& cmd : spec) {
    const std::string name = cmd["command"];
    EXPECT_FALSE(cmd["description"].get<std::string>().empty()) << "mmkit " << name << " has no description";
    for (const auto& o : cmd["options"]) {
      const std::string opt = o["names"].back();
      const std::string d = o["description"];
      const std::string where = "mmkit " + name + " " + opt;
      EXPECT_FALSE(d.empty()) << where << ": no help text";
      EXPECT_FALSE(o["greedy"].get<bool>())
          << where << ": one occurrence takes several values, so it swallows the arguments after it";
      // A value option that is not required says its default: shown by --help, or in its text.
      const bool needs_default = !o["flag"].get<bool>() && !o["required"].get<bool>() &&
                                 !o["positional"].get<bool>() && !o["repeatable"].get<bool>();
      if (needs_default) {
        EXPECT_TRUE(!o["default"].get<std::string>().empty() || d.find("default") != std::string::npos)
            << where << ": neither a default shown by --help nor \"default\" in \"" << d << "\"";
      }
    }
    // Flags never show a CLI11 default such as "--no-augment{false}".
    std::string out, err;
    ASSERT_EQ(run_cli(name + " --help", &out, &err), 0) << name << ": " << err;
    EXPECT_FALSE(std::regex_search(out, std::regex("--[a-z-]+\\{"))) << "mmkit " << name << " --help:\n" << out;
  }
}

TEST(CliWalk, OneNameOneDefaultOneHelpTextPerConcept) {
  json spec = command_spec();
  std::vector<Convention> conv = conventions();
  ASSERT_GE(conv.size(), 10u) << "docs/CLI.md: expected the conventions table";
  std::set<std::string> all_names;
  for (const auto& cmd : spec)
    for (const auto& o : cmd["options"])
      for (const auto& n : o["names"]) all_names.insert(n);
  for (const Convention& c : conv) {
    for (const auto& bad : c.never) {
      for (const auto& cmd : spec)
        for (const auto& o : cmd["options"])
          EXPECT_FALSE(has_name(o, bad)) << "mmkit " << cmd["command"].get<std::string>() << " has " << bad
                                         << "; docs/CLI.md: " << c.concept << " is " << c.name;
    }
    EXPECT_TRUE(all_names.count(c.name)) << "docs/CLI.md names " << c.name << " (" << c.concept << "); no command has it";
    std::map<std::string, std::string> helps;  // help text -> first command with it
    for (const auto& cmd : spec) {
      const std::string name = cmd["command"];
      if (!in_scope(name, c.scopes)) continue;
      for (const auto& o : cmd["options"]) {
        if (!has_name(o, c.name)) continue;
        if (!c.def.empty() && c.def != "per model") {
          EXPECT_EQ(o["default"].get<std::string>(), c.def)
              << "mmkit " << name << " " << c.name << ": docs/CLI.md gives the default of " << c.concept << " as " << c.def;
        }
        if (c.def != "per model") helps.emplace(o["description"].get<std::string>(), name);
      }
    }
    if (helps.size() > 1) {
      std::string list;
      for (auto& [h, cmd] : helps) list += "\n  mmkit " + cmd + ": " + h;
      ADD_FAILURE() << c.name << " (" << c.concept << ") is described " << helps.size() << " ways:" << list;
    }
  }
}

TEST(CliWalk, EveryModelOptionTakesARunFolder) {
  REQUIRE_FMNIST();
  const std::string W = test::make_temp_dir("walk");
  const std::string D = W + "/data";
  // Data and one run folder per kind of model (a few steps each), made by the CLI itself.
  ASSERT_EQ(run_cli("data sort-of-clevr --out " + D + "/soc --train 16 --test 4"), 0);
  ASSERT_EQ(run_cli("data soc-captions --out " + D + "/cap --train 16 --test 4"), 0);
  ASSERT_EQ(run_cli("data shapes --n 8 --size 32 --out " + D + "/shapes"), 0);
  const std::string tiny_train = " --max-steps 1 --threads 2 --checkpoint-every 1";
  std::string err;
  ASSERT_EQ(run_cli("train vit --out " + W + "/vit --limit-train 64 --limit-test 32 --batch 32 --dim 16 --depth 1 "
                  "--heads 2 --mlp-dim 32 --patch 7" + tiny_train, nullptr, &err), 0) << err;
  // Three of the four train in bf16 mixed precision (--precision, every trainer): their files are
  // ordinary f32 models for every command below.
  ASSERT_EQ(run_cli("train clip --out " + W + "/clip --limit-train 64 --limit-test 32 --eval-images 16 --batch 32 "
                  "--bpe-merges 50 --precision bf16" + tiny_train, nullptr, &err), 0) << err;
  ASSERT_EQ(run_cli("train vqa --data " + D + "/soc --out " + W + "/vqa --batch 4 --dim 16 --mlp-dim 32 --stem-dim 8"
                  " --precision bf16" + tiny_train, nullptr, &err), 0) << err;
  ASSERT_EQ(run_cli("train caption --data " + D + "/cap --out " + W + "/cap --batch 4 --dim 16 --depth 1 --dec-dim 16 "
                  "--dec-depth 1 --mlp-dim 32 --dec-mlp-dim 32 --val-images 2 --precision bf16" + tiny_train, nullptr,
                  &err), 0) << err;
  for (const char* run : {"vit", "clip", "vqa", "cap"})  // a stopped run leaves its model file
    ASSERT_TRUE(test::file_exists(W + "/" + run + "/model.safetensors")) << run;

  // Each command that takes a model, with run folders; {X} are replaced below. Commands run in
  // this order (search needs the index built before it).
  const std::vector<std::pair<std::string, std::string>> uses = {
      {"eval vit", "--model {vit} --limit 32 --confusion {W}/out/c1.png"},
      {"classify", "--model {vit} {img}"},
      {"embed", "--model {clip} --text \"a shirt\" --image {img}"},
      {"tokenize", "--model {clip} \"a shirt\""},
      {"zero-shot", "--model {clip} --labels shirt,boot {img}"},
      {"eval zero-shot", "--model {clip} --limit 20 --confusion {W}/out/c2.png"},
      {"eval retrieval", "--model {clip} --limit 20"},
      {"quantize", "--model {clip} --to int8 --out {W}/out/q.safetensors"},
      {"index build", "--model {clip} --images {D}/shapes --out {W}/out/idx"},
      {"search", "--index {W}/out/idx --model {clip} \"a shirt\""},
      {"index add", "--index {W}/out/live --model {clip} {img}"},
      {"index update", "--index {W}/out/live --id shape_000001.png --image {img} --model {clip}"},
      {"train clip", "--init {clip} --out {W}/out/ft --limit-train 64 --limit-test 32 --eval-images 16 --batch 32 "
                     "--max-steps 1"},
      {"eval vqa", "--model {vqa} --data {D}/soc --limit 2"},
      {"vqa", "--model {vqa} --image {D}/soc/images/test_00000.png --question \"What is the shape of the red object?\""},
      {"eval caption", "--model {cap} --data {D}/cap --limit 2 --beam 2"},
      {"caption", "--model {cap} {D}/cap/images/test_00000.png"},
      {"serve", "--model {clip} --index {W}/out/idx --classifier {vit} --vqa {vqa} --caption {cap}"},
  };
  auto fill = [&](std::string s) {
    const std::map<std::string, std::string> sub = {{"{vit}", W + "/vit"},   {"{clip}", W + "/clip/"},
                                                    {"{vqa}", W + "/vqa"},   {"{cap}", W + "/cap"},
                                                    {"{W}", W},              {"{D}", D},
                                                    {"{img}", D + "/shapes/shape_000001.png"}};
    for (auto& [k, v] : sub)
      for (size_t p; (p = s.find(k)) != std::string::npos;) s.replace(p, k.size(), v);
    return s;
  };
  // Every option that names a model must appear in the table with a run folder.
  const std::set<std::string> model_options = {"--model", "--init", "--vqa", "--caption", "--classifier"};
  json spec = command_spec();
  for (const auto& cmd : spec)
    for (const auto& o : cmd["options"])
      for (const auto& n : o["names"]) {
        if (!model_options.count(n)) continue;
        const std::string name = cmd["command"];
        auto it = std::find_if(uses.begin(), uses.end(), [&](auto& u) { return u.first == name; });
        ASSERT_NE(it, uses.end()) << "mmkit " << name << " " << n.get<std::string>()
                                  << ": add its use with a run folder to this test";
        EXPECT_NE(it->second.find(n.get<std::string>() + " {"), std::string::npos)
            << "mmkit " << name << ": this test does not pass " << n.get<std::string>() << " a run folder";
      }

  for (const auto& [name, args] : uses) {
    const std::string line = name + " " + fill(args);
    if (name != "serve") {
      std::string out;
      EXPECT_EQ(run_cli(line, &out, &err), 0) << "mmkit " << line << "\n" << err;
      // Accuracies and recalls are fractions in every evaluation's readable output (not "46.88%").
      if (name.rfind("eval ", 0) == 0) {
        EXPECT_EQ(out.find('%'), std::string::npos) << "mmkit " << line << "\n" << out;
        EXPECT_TRUE(std::regex_search(out, std::regex("0\\.[0-9]{4}"))) << "mmkit " << line << "\n" << out;
      }
      continue;
    }
    // The server: it must start listening with every model given as a run folder, then stop on SIGTERM.
    const std::string port_file = W + "/out/port";
    pid_t pid = fork();
    if (pid == 0) {
      const std::string cmd = "exec " + std::string(MMKIT_BINARY_DIR) + "/mmkit " + line + " --port 0 --port-file " +
                              port_file + " > " + W + "/out/serve.log 2>&1";
      execl("/bin/bash", "bash", "-c", cmd.c_str(), (char*)nullptr);
      _exit(127);
    }
    int st = 0;
    bool exited = false;
    for (int i = 0; i < 1200 && !test::file_exists(port_file); ++i) {
      if (waitpid(pid, &st, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!exited) {
      kill(pid, SIGTERM);
      waitpid(pid, &st, 0);
    }
    std::ifstream log(W + "/out/serve.log");
    std::string text((std::istreambuf_iterator<char>(log)), {});
    EXPECT_TRUE(test::file_exists(port_file)) << "mmkit " << line << " did not start:\n" << text;
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "mmkit serve did not stop cleanly:\n" << text;
  }
  if (!HasFailure()) std::filesystem::remove_all(W);
}
