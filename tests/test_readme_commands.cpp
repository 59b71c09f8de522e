// Issue #24, acceptance 1: every command line in README.md's ```sh blocks runs and exits 0, so the
// README cannot drift from the command line again.
//
// The commands run in order, as a newcomer would type them, in an empty folder where `build` is a
// link to this build (so `build/mmkit` works as written). Files the README presumes the reader
// has are made first: `clip-vit-base-patch32/` (a tiny random CLIP in Hugging Face layout:
// model.safetensors, config.json, vocab.json, merges.txt), `siglip-base-patch16-224/` (the tiny
// SigLIP fixture folder) and `photo.png` (a generated image).
// Rules:
//  - a line whose comment starts with "full" (`# full: ...`) is not run: the nearest command above
//    it with the same subcommand must be its short variant, i.e. the same arguments plus or with
//    other values of the documented shortening flags only (kShortening);
//  - the set-up blocks (`scripts/setup.sh && ...`) are not run (this test runs after the set-up):
//    each of their mmkit commands must be a command of the README that is run or checked as above;
//  - `build/mmkit serve ... --port N` runs in the background on a free port (`--port 0
//    --port-file`), later `localhost:N` become that port, and it is stopped (SIGTERM, must exit 0)
//    at the end;
//  - curl lines run with --fail-with-body (an HTTP error fails the line);
//  - `mpirun ... build/mmkit ...` lines (data-parallel training) run with --allow-run-as-root
//    and --oversubscribe added (CI runs as root on 2 cores), and are skipped with a message when
//    mmkit was built without MPI or mpirun is missing; their mpirun options are compared like
//    the rest of a `# full` line's.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "mmkit/image/canvas.h"
#include "mmkit/image/image.h"
#include "mmkit/models/clip_export.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/text/clip_tokenizer.h"
#include "mmkit/data/fashion_mnist.h"
#include "mmkit/dist/communicator.h"
#include "test_util.h"

using namespace mmkit;

namespace {

// Flags that only make a run shorter (documented in `--help` of the commands that have them).
const std::set<std::string> kShortening = {"--epochs",      "--limit-train", "--limit-test", "--max-steps",
                                           "--eval-images", "--val-images",  "--train",      "--test",
                                           "--n",           "--limit",       "--stop-after"};

struct Command {
  int line = 0;       // README line where it starts
  std::string text;   // continuation lines joined, comment removed
  std::string comment;
  bool setup = false;
};

// Shell words of `s` (single and double quotes, backslash escapes in double quotes).
std::vector<std::string> shell_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool any = false;
  char q = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (q) {
      if (c == q) q = 0;
      else if (q == '"' && c == '\\' && i + 1 < s.size()) cur += s[++i];
      else cur += c;
    } else if (c == '\'' || c == '"') {
      q = c;
      any = true;
    } else if (c == ' ' || c == '\t') {
      if (any || !cur.empty()) out.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
    }
  }
  if (any || !cur.empty()) out.push_back(cur);
  return out;
}

// Position of an unquoted `token` in s at or after `from` (npos if none).
size_t find_unquoted(const std::string& s, const std::string& token, size_t from = 0) {
  char q = 0;
  for (size_t i = from; i < s.size(); ++i) {
    if (q) {
      if (s[i] == q) q = 0;
    } else if (s[i] == '\'' || s[i] == '"') {
      q = s[i];
    } else if (s.compare(i, token.size(), token) == 0 && (token != "#" || i == 0 || s[i - 1] == ' ')) {
      return i;
    }
  }
  return std::string::npos;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<Command> readme_commands(const std::string& path) {
  std::ifstream f(path);
  std::vector<Command> out;
  std::string line, pending;
  int n = 0, start = 0;
  bool in_block = false;
  while (std::getline(f, line)) {
    ++n;
    if (!in_block) {
      in_block = line.rfind("```sh", 0) == 0;
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      in_block = false;
      continue;
    }
    if (pending.empty()) start = n;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    std::string full = pending + line;
    pending.clear();
    std::string comment;
    size_t h = find_unquoted(full, "#");
    if (h != std::string::npos) {
      comment = trim(full.substr(h + 1));
      full = full.substr(0, h);
    }
    full = trim(full);
    if (full.empty()) continue;
    const bool setup = full.rfind("scripts/setup.sh", 0) == 0;
    for (size_t a = 0;;) {  // `x && y`: one command each
      size_t b = find_unquoted(full, "&&", a);
      Command c;
      c.line = start;
      c.text = trim(full.substr(a, b == std::string::npos ? std::string::npos : b - a));
      c.comment = comment;
      c.setup = setup;
      out.push_back(c);
      if (b == std::string::npos) break;
      a = b + 2;
    }
  }
  return out;
}

// A command line's launcher (`mpirun -np 2`, up to the program) and the program's words.
struct Launched {
  std::vector<std::string> launcher, program;
};
Launched split_launcher(const std::vector<std::string>& w) {
  Launched l;
  size_t i = 0;
  if (!w.empty() && w[0] == "mpirun")
    while (i < w.size() && w[i] != "build/mmkit") l.launcher.push_back(w[i++]);
  l.program.assign(w.begin() + std::ptrdiff_t(i), w.end());
  return l;
}

// "build/mmkit train vit --data ..." (also after `mpirun -np 2`) -> "train vit"; "" for other programs.
std::string subcommand(const std::vector<std::string>& words) {
  const std::vector<std::string> w = split_launcher(words).program;
  if (w.empty() || w[0] != "build/mmkit") return "";
  std::string s;
  for (size_t i = 1; i < w.size() && i < 3 && w[i][0] != '-' && w[i].find_first_of("/.\" ") == std::string::npos;
       ++i)
    s += (s.empty() ? "" : " ") + w[i];
  return s;
}

// Options as flag -> value ("" for a flag followed by another flag) and the other words in order.
struct Args {
  std::map<std::string, std::string> opts;
  std::vector<std::string> words;
};
Args parse_args(const std::vector<std::string>& w) {
  Args a;
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i].size() > 1 && w[i][0] == '-') {
      const std::string flag = w[i];
      std::string value;
      if (i + 1 < w.size() && (w[i + 1].empty() || w[i + 1][0] != '-')) value = w[++i];
      a.opts[flag] = value;
    } else {
      a.words.push_back(w[i]);
    }
  }
  return a;
}

// Empty when `tiny` is `full` with only shortening flags added or changed, else what differs.
std::string short_variant_problem(const std::string& tiny, const std::string& full) {
  const Launched lt = split_launcher(shell_words(tiny)), lf = split_launcher(shell_words(full));
  if (lt.launcher != lf.launcher) return "another launcher (mpirun options)";
  Args t = parse_args(lt.program), f = parse_args(lf.program);
  if (t.words != f.words) return "other positional arguments";
  for (auto& [k, v] : f.opts) {
    auto it = t.opts.find(k);
    if (it == t.opts.end()) return k + " is missing";
    if (it->second != v && !kShortening.count(k)) return k + " has another value";
  }
  for (auto& [k, v] : t.opts)
    if (!f.opts.count(k) && !kShortening.count(k)) return k + " is not a shortening flag";
  return "";
}

struct Ran {
  int code;
  std::string output;
  double seconds;
};

// Runs `cmd` with bash in `dir` (10 min at most), stdout and stderr captured.
Ran run_in(const std::string& dir, const std::string& cmd) {
  const std::string log = dir + "/.last_output", script = dir + "/.last_command.sh";
  std::ofstream(script) << cmd << "\n";
  const std::string sh = "cd '" + dir + "' && timeout 600 bash .last_command.sh > " + log + " 2>&1";
  auto t0 = std::chrono::steady_clock::now();
  int st = std::system(sh.c_str());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ifstream f(log);
  std::string out((std::istreambuf_iterator<char>(f)), {});
  if (out.size() > 3000) out = "...\n" + out.substr(out.size() - 3000);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 1000, out, s};
}

// The files the README's reader is assumed to have.
void make_placeholders(const std::string& dir) {
  // photo.png: a generated "photo".
  Canvas c(96, 80, Rgb{200, 220, 240});
  c.disc(40, 40, 22, Rgb{220, 40, 30});
  c.fill_rect(60, 10, 25, 30, Rgb{30, 60, 200});
  write_png(dir + "/photo.png", c.image());
  // clip-vit-base-patch32/: a tiny random CLIP as Hugging Face writes it.
  const std::string hf = dir + "/clip-vit-base-patch32";
  std::filesystem::create_directory(hf);
  Clip m;
  m.init(test::tiny_clip_config(), 5);
  save_clip_model(hf + "/model.safetensors", m, {}, "hf_clip");  // + config.json
  std::vector<std::string> corpus;
  for (const char* s : {"a photo of a cat", "a photo of a dog", "a drawing of a car", "a red circle", "a blue square"})
    for (int i = 0; i < 3; ++i) corpus.push_back(s);
  text::ClipTokenizer tok = text::ClipTokenizer::from_merges(text::train_bpe_merges(corpus, 60));
  nlohmann::json v = nlohmann::json::object();
  for (int32_t id = 0; id < tok.vocab_size(); ++id) v[tok.token(id)] = id;
  std::ofstream(hf + "/vocab.json") << v.dump();
  std::ofstream mg(hf + "/merges.txt");
  mg << "#version: 0.2\n";
  for (const auto& x : tok.merges()) mg << x << "\n";
  // siglip-base-patch16-224/: the tiny random SigLIP folder of tests/fixtures/siglip_tiny.
  const std::string sig = dir + "/siglip-base-patch16-224";
  std::filesystem::create_directory(sig);
  for (const char* f : {"config.json", "model.safetensors", "spiece.model", "preprocessor_config.json",
                        "tokenizer_config.json"})
    std::filesystem::copy_file(test::fixture(std::string("siglip_tiny/") + f), sig + "/" + f);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

// The README's `mmkit serve`, in the background; stopped with SIGTERM by stop() or, when a test
// assertion returns early, by the destructor.
struct BackgroundServer {
  pid_t pid = 0;
  int stop() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000;
  }
  ~BackgroundServer() { stop(); }
};

}  // namespace

TEST(ReadmeCommands, ParserSeesWhatTheRulesNeed) {
  // The parser itself: continuation lines, comments, `&&`, quotes.
  const std::string dir = test::make_temp_dir("readme_parse");
  std::ofstream(dir + "/R.md") << "text\n```sh\nbuild/mmkit a --x \"p # q\" \\\n    --y 1   # full: slow\n"
                                  "scripts/setup.sh && build/mmkit b\n```\n```\nnot sh\n```\n";
  auto cmds = readme_commands(dir + "/R.md");
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[0].text, "build/mmkit a --x \"p # q\"      --y 1");
  EXPECT_EQ(cmds[0].comment, "full: slow");
  EXPECT_EQ(cmds[0].line, 3);
  EXPECT_TRUE(cmds[1].setup);
  EXPECT_EQ(cmds[2].text, "build/mmkit b");
  EXPECT_EQ(shell_words(cmds[0].text), (std::vector<std::string>{"build/mmkit", "a", "--x", "p # q", "--y", "1"}));
  EXPECT_EQ(subcommand(shell_words("build/mmkit train vit --data x")), "train vit");
  EXPECT_EQ(subcommand(shell_words("build/mmkit search --index i \"a red\"")), "search");
  // Short variants: only shortening flags may be added or changed.
  EXPECT_EQ(short_variant_problem("build/mmkit train vit --out r --epochs 1", "build/mmkit train vit --out r"), "");
  EXPECT_EQ(short_variant_problem("build/mmkit train vit --out r --epochs 1", "build/mmkit train vit --out r --epochs 9"), "");
  EXPECT_NE(short_variant_problem("build/mmkit train vit --out r --dim 8", "build/mmkit train vit --out r"), "");
  EXPECT_NE(short_variant_problem("build/mmkit train vit --out q --epochs 1", "build/mmkit train vit --out r"), "");
  // Data-parallel lines: the subcommand after mpirun's options, which must match too.
  EXPECT_EQ(subcommand(shell_words("mpirun -np 2 build/mmkit train clip --out r")), "train clip");
  EXPECT_EQ(subcommand(shell_words("mpirun -np 2 hostname")), "");
  EXPECT_EQ(short_variant_problem("mpirun -np 2 build/mmkit train vit --out r --epochs 1",
                                  "mpirun -np 2 build/mmkit train vit --out r"), "");
  EXPECT_NE(short_variant_problem("mpirun -np 2 build/mmkit train vit --out r --epochs 1",
                                  "mpirun -np 4 build/mmkit train vit --out r"), "");
  EXPECT_NE(short_variant_problem("build/mmkit train vit --out r --epochs 1", "mpirun -np 2 build/mmkit train vit --out r"),
            "");
  std::filesystem::remove_all(dir);
}

TEST(ReadmeCommands, EveryCommandLineRunsAsWritten) {
  REQUIRE_FMNIST();
  const std::vector<Command> cmds = readme_commands(std::string(MMKIT_SOURCE_DIR) + "/README.md");
  ASSERT_GT(cmds.size(), 20u) << "README.md: expected its ```sh blocks";
  ASSERT_EQ(std::system("command -v curl > /dev/null"), 0) << "curl is needed (scripts/setup.sh installs it)";
  const std::string dir = test::make_temp_dir("readme");
  std::filesystem::create_directory_symlink(MMKIT_BINARY_DIR, dir + "/build");
  make_placeholders(dir);

  std::vector<std::string> checked;  // commands run or checked as a full variant
  std::vector<std::pair<std::string, std::string>> ran;  // subcommand, text
  std::string port_from, port_to;
  BackgroundServer server;
  // Data-parallel lines need an MPI build and mpirun (scripts/setup.sh installs both).
  std::string no_mpi;
  if (!dist::built_with_mpi()) no_mpi = "mmkit was built without MPI (libopenmpi-dev)";
  else if (std::system("command -v mpirun > /dev/null 2>&1") != 0) no_mpi = "mpirun not found (openmpi-bin)";
  int mpi_skipped = 0;
  double total = 0;
  for (const Command& c : cmds) {
    if (c.setup) continue;  // checked at the end
    const std::vector<std::string> w = shell_words(c.text);
    const std::string sub = subcommand(w);
    const std::string where = "README.md:" + std::to_string(c.line) + ": " + c.text;
    if (c.comment.rfind("full", 0) == 0) {
      ASSERT_FALSE(sub.empty()) << where << "\n  a `# full` line must be an mmkit command";
      const std::string* tiny = nullptr;
      for (auto it = ran.rbegin(); it != ran.rend() && !tiny; ++it)
        if (it->first == sub) tiny = &it->second;
      ASSERT_TRUE(tiny) << where << "\n  no short variant of `" << sub << "` above it";
      EXPECT_EQ(short_variant_problem(*tiny, c.text), "")
          << where << "\n  is not its short variant `" << *tiny << "` without shortening flags";
      checked.push_back(c.text);
      continue;
    }
    if (sub == "serve") {
      ASSERT_EQ(server.pid, 0) << where << "\n  a second server";
      std::string cmd = c.text;
      size_t p = cmd.find("--port ");
      ASSERT_NE(p, std::string::npos) << where << "\n  serve lines give --port";
      size_t e = cmd.find(' ', p + 7);
      port_from = "localhost:" + cmd.substr(p + 7, e - p - 7);
      cmd = cmd.substr(0, p) + "--port 0 --port-file .port" + (e == std::string::npos ? "" : cmd.substr(e));
      std::remove((dir + "/.port").c_str());
      server.pid = fork();
      if (server.pid == 0) {
        if (chdir(dir.c_str()) != 0) _exit(127);
        execl("/bin/bash", "bash", "-c", ("exec " + cmd + " > .serve_output 2>&1").c_str(), (char*)nullptr);
        _exit(127);
      }
      for (int i = 0; i < 1200 && !test::file_exists(dir + "/.port"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream pf(dir + "/.port");
      int port = 0;
      pf >> port;
      ASSERT_GT(port, 0) << where << "\n  the server did not start; its output:\n" << run_in(dir, "cat .serve_output").output;
      port_to = "localhost:" + std::to_string(port);
      checked.push_back(c.text);
      ran.push_back({sub, c.text});
      continue;
    }
    std::string cmd = c.text;
    if (!port_from.empty()) cmd = replace_all(cmd, port_from, port_to);
    if (w[0] == "curl") cmd = "curl --fail-with-body --max-time 120" + cmd.substr(4);
    if (w[0] == "mpirun") {
      ASSERT_FALSE(sub.empty()) << where << "\n  an mpirun line must start build/mmkit";
      if (!no_mpi.empty()) {
        std::printf("  skipped  README.md:%d  %s\n           (%s)\n", c.line, c.text.c_str(), no_mpi.c_str());
        ++mpi_skipped;
        checked.push_back(c.text);
        ran.push_back({sub, c.text});
        continue;
      }
      cmd = test::mpirun_launcher() + cmd.substr(6);  // "mpirun" + the line's own options
    }
    Ran r = run_in(dir, cmd);
    total += r.seconds;
    std::printf("%6.1f s  README.md:%d  %s\n", r.seconds, c.line, c.text.c_str());
    EXPECT_EQ(r.code, 0) << where << "\n  exit " << r.code << ", output:\n" << r.output;
    checked.push_back(c.text);
    if (!sub.empty()) ran.push_back({sub, c.text});
  }
  if (server.pid > 0) {
    int code = server.stop();
    EXPECT_EQ(code, 0) << "mmkit serve did not stop cleanly on SIGTERM:\n" << run_in(dir, "tail -5 .serve_output").output;
  }
  std::printf("%6.1f s  in all\n", total);
  if (mpi_skipped)
    std::printf("%d data-parallel line(s) not run: %s; they are checked to be mmkit commands only\n", mpi_skipped,
                no_mpi.c_str());

  // The set-up commands: run above (or checked as full variants), except the set-up itself.
  for (const Command& c : cmds) {
    if (!c.setup || c.text.rfind("scripts/setup.sh", 0) == 0 || c.text.rfind("ctest ", 0) == 0) continue;
    EXPECT_NE(std::find(checked.begin(), checked.end(), c.text), checked.end())
        << "README.md:" << c.line << ": the set-up's `" << c.text << "` is not one of the README's task commands";
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}
