// The live index's commands (live_index_commands.cpp), registered by add_index_commands
// (index_commands.cpp) under `mmkit index`, and `mmkit search` on a live index folder.
#pragma once
#include <string>

#include "cli.h"

namespace mmkit::cli {

// index add, update, remove, duplicates, compact, under `index`
void add_live_index_commands(Cli& c, CLI::App* index_cmd);
// `mmkit search` on a live index folder: --filter (JSON) and --min-score apply.
int run_live_search(const std::string& dir, const std::string& model, const std::string& vocab, const std::string& text,
                    const std::string& image, int top_k, const std::string& filter, double min_score, bool as_json);

}  // namespace mmkit::cli
