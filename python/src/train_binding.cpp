// mmkit.train's engine: the `mmkit` command line run in this process
// (apps/cli's registry, the one `mmkit` itself parses with), so a training run
// from Python has exactly the CLI's options, defaults, checks and --resume rules.
#include <pybind11/stl.h>

#include <cstdio>

#include "bindings.h"
#include "cli.h"
#include "py_common.h"

namespace mmkit::py {

void bind_train(pb::module_& mod) {
  mod.def(
      "run_cli",
      [](const std::vector<std::string>& args) {
        CLI::App app{cli::kAppDescription};
        cli::Cli c;
        cli::register_commands(app, c);
        std::vector<std::string> argv_storage{"mmkit"};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& s : argv_storage) argv.push_back(s.data());
        try {
          app.parse(int(argv.size()), argv.data());
        } catch (const CLI::CallForHelp&) {
          throw pb::value_error(app.help());
        } catch (const CLI::ParseError& e) {
          throw pb::value_error(std::string("mmkit ") + (args.empty() ? "" : args[0]) + ": " + e.what());
        }
        if (!c.action) return 0;
        // SIGINT during a training run: the loop's handler records it and saves a checkpoint; the exit
        // code (128 + signal) tells the caller, which raises KeyboardInterrupt.
        int code = call_released({}, [&] {
          int rc = c.action();
          std::fflush(stdout);
          return rc;
        });
        return code;
      },
      pb::arg("args"),
      "Run one `mmkit` command line in this process (args without the program name); returns its exit code. "
      "Errors raise mmkit.Error (the CLI's message) or ValueError (usage).");
}

}  // namespace mmkit::py
