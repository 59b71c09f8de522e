// The layering of docs/ARCHITECTURE.md is what the code does: the rows of
// its layer table ("## Layers", lowest layer first, one row per folder of
// src/mmkit/) give each folder a rank, and no #include in src/ may point to
// a folder of a higher rank. The build's libraries follow the same order
// (CMakeLists.txt); the server library must not reach the trainer.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kSrc = std::string(MMKIT_SOURCE_DIR) + "/src/mmkit";

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> list_dir(const std::string& dir, bool dirs) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n[0] == '.') continue;
      if ((e->d_type == DT_DIR) == dirs) out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Folder -> rank from the table under "## Layers": rows "| `name/` | ...".
std::map<std::string, int> layer_ranks(const std::string& md) {
  std::map<std::string, int> rank;
  const size_t at = md.find("\n## Layers");
  if (at == std::string::npos) return rank;
  std::istringstream in(md.substr(at + 1));
  std::string line;
  std::getline(in, line);  // the heading
  const std::regex row(R"(^\|\s*`([a-z_]+)/`\s*\|)");
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) break;
    std::smatch m;
    if (std::regex_search(line, m, row)) {
      rank.emplace(m[1], int(rank.size()));
      in_table = true;
    } else if (in_table && line.rfind("|", 0) != 0) {
      break;  // the table ended
    }
  }
  return rank;
}

// "file:line: includes mmkit/<to>/... (layer N) from <from>/ (layer M)" for
// every include of `text` (a file of folder `from`) that points upward or to
// a folder outside the table.
std::vector<std::string> upward_includes(const std::string& file, const std::string& from, const std::string& text,
                                         const std::map<std::string, int>& rank) {
  std::vector<std::string> bad;
  const std::regex inc(R"(^\s*#\s*include\s*"mmkit/([a-z_]+)/)");
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (!std::regex_search(line, m, inc)) continue;
    const std::string to = m[1];
    auto t = rank.find(to);
    if (t == rank.end()) {
      bad.push_back(file + ":" + std::to_string(n) + ": includes mmkit/" + to + "/, a folder not in the layer table");
    } else if (t->second > rank.at(from)) {
      bad.push_back(file + ":" + std::to_string(n) + ": " + from + "/ (layer " + std::to_string(rank.at(from)) +
                    ") includes mmkit/" + to + "/ (layer " + std::to_string(t->second) + "), a layer above it");
    }
  }
  return bad;
}

}  // namespace

TEST(Layers, TheCheckCatchesAnUpwardInclude) {
  const std::map<std::string, int> rank = {{"core", 0}, {"models", 1}, {"train", 2}};
  EXPECT_TRUE(upward_includes("x.cpp", "models", "#include \"mmkit/core/tensor.h\"\n", rank).empty());
  auto bad = upward_includes("m.cpp", "models", "#include <vector>\n#include \"mmkit/train/loop.h\"\n", rank);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].find("m.cpp:2: models/ (layer 1) includes mmkit/train/ (layer 2)"), std::string::npos) << bad[0];
  EXPECT_EQ(upward_includes("m.cpp", "models", "  #  include \"mmkit/nowhere/a.h\"\n", rank).size(), 1u);
  const auto r = layer_ranks("# A\n\n## Layers\n\n| layer | what |\n|---|---|\n| `core/` | a |\n| `nn/` | b |\n\nafter\n| `x/` | c |\n");
  EXPECT_EQ(r, (std::map<std::string, int>{{"core", 0}, {"nn", 1}}));
}

TEST(Layers, EveryIncludeInSrcPointsDownward) {
  const std::string md = read_file(std::string(MMKIT_SOURCE_DIR) + "/docs/ARCHITECTURE.md");
  const auto rank = layer_ranks(md);
  ASSERT_GE(rank.size(), 10u) << "docs/ARCHITECTURE.md has no layer table under '## Layers'";
  std::vector<std::string> bad;
  int files = 0;
  for (const std::string& folder : list_dir(kSrc, /*dirs=*/true)) {
    if (!rank.count(folder)) {
      bad.push_back("src/mmkit/" + folder + "/ is not a row of the layer table in docs/ARCHITECTURE.md");
      continue;
    }
    for (const std::string& f : list_dir(kSrc + "/" + folder, /*dirs=*/false)) {
      ++files;
      auto b = upward_includes("src/mmkit/" + folder + "/" + f, folder, read_file(kSrc + "/" + folder + "/" + f), rank);
      bad.insert(bad.end(), b.begin(), b.end());
    }
  }
  EXPECT_GT(files, 100);
  for (const auto& b : bad) ADD_FAILURE() << b;
}

// build/link_graph.txt (written by CMake): "<library>: <what it links>;...".
TEST(Layers, TheServerLibraryDoesNotLinkTheTrainer) {
  std::ifstream f(std::string(MMKIT_BINARY_DIR) + "/link_graph.txt");
  ASSERT_TRUE(f.good()) << "no link_graph.txt in the build directory (CMakeLists.txt writes it)";
  std::map<std::string, std::vector<std::string>> links;
  std::string line;
  while (std::getline(f, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::vector<std::string>& to = links[line.substr(0, colon)];
    std::stringstream rest(line.substr(colon + 1));
    std::string item;
    while (std::getline(rest, item, ';')) {
      item.erase(0, item.find_first_not_of(' '));
      if (!item.empty()) to.push_back(item);
    }
  }
  ASSERT_TRUE(links.count("mmkit_server") && links.count("mmkit_train")) << "link_graph.txt lacks the libraries";
  auto reaches = [&](const std::string& from) {
    std::set<std::string> seen;
    std::vector<std::string> todo = {from};
    while (!todo.empty()) {
      std::string t = todo.back();
      todo.pop_back();
      if (!seen.insert(t).second) continue;
      for (const auto& n : links[t]) todo.push_back(n);
    }
    return seen;
  };
  const auto server = reaches("mmkit_server");
  EXPECT_FALSE(server.count("mmkit_train")) << "mmkit_server links the trainer";
  EXPECT_FALSE(server.count("mmkit_report"));
  EXPECT_TRUE(server.count("mmkit_infer"));
  // The layer libraries link only downward: none reaches one built on it.
  EXPECT_FALSE(reaches("mmkit_base").count("mmkit_model"));
  EXPECT_FALSE(reaches("mmkit_model").count("mmkit_data"));
  EXPECT_FALSE(reaches("mmkit_infer").count("mmkit_train"));
  EXPECT_TRUE(reaches("mmkit_train").count("mmkit_base"));
}
