// `mmkit commands`: every command with its description, and with --json every
// option (names, help text, default, whether it is a flag, required or
// repeatable) -- read from the CLI11 registry itself, so it cannot drift.
// tests/test_cli_walk.cpp walks the command line through it.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"

namespace mmkit::cli {
namespace {

struct ReferenceArgs {
  bool json = false;
  const CLI::App* root = nullptr;
};

nlohmann::json option_json(const CLI::Option* o) {
  nlohmann::json names = nlohmann::json::array();
  for (const auto& s : o->get_snames()) names.push_back("-" + s);
  for (const auto& l : o->get_lnames()) names.push_back("--" + l);
  const bool positional = !o->nonpositional();
  if (positional) names.push_back(o->get_name());
  const bool flag = o->get_expected_max() == 0;
  return {{"names", names},
          {"description", o->get_description()},
          {"default", o->get_default_str()},
          {"type", o->get_type_name()},
          {"flag", flag},
          {"positional", positional},
          {"required", o->get_required()},
          // a named option whose one occurrence takes several values swallows what follows it
          {"greedy", !positional && !flag && o->get_allow_extra_args()},
          {"repeatable", o->get_items_expected_max() > 1}};
}

void walk(const CLI::App* app, const std::string& path, nlohmann::json* out) {
  for (const CLI::App* sub : app->get_subcommands({})) {
    const std::string name = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    if (sub->get_group().empty()) continue;  // hidden
    const auto subs = sub->get_subcommands({});
    if (subs.empty()) {
      nlohmann::json opts = nlohmann::json::array();
      for (const CLI::Option* o : sub->get_options())
        if (o->get_name() != "--help") opts.push_back(option_json(o));
      out->push_back({{"command", name}, {"description", sub->get_description()}, {"options", opts}});
    } else {
      walk(sub, name, out);
    }
  }
}

int run_reference(const ReferenceArgs& a) {
  nlohmann::json cmds = nlohmann::json::array();
  walk(a.root, "", &cmds);
  if (a.json) {
    std::cout << cmds.dump(1) << "\n";
    return 0;
  }
  size_t w = 0;
  for (auto& c : cmds) w = std::max(w, c["command"].get<std::string>().size());
  for (auto& c : cmds)
    std::printf("  mmkit %-*s  %s\n", int(w), c["command"].get<std::string>().c_str(),
                c["description"].get<std::string>().c_str());
  std::printf("\n`mmkit COMMAND --help` lists a command's options; docs/CLI.md has the conventions they share.\n");
  return 0;
}

}  // namespace

void add_reference_commands(Cli& c) {
  auto ra = std::make_shared<ReferenceArgs>();
  ra->root = c.app;
  auto* rc = c.app->add_subcommand("commands", "list every command (with --json: every option, its help and default)");
  add_json_flag(rc, &ra->json);
  c.on(rc, ra, run_reference);
}

}  // namespace mmkit::cli
