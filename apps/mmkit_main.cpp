// The `mmkit` command line: a thin client of the library. Command groups
// live in apps/cli/ (one file each) and register their subcommands through
// cli::register_commands (which the Python module's mmkit.train parses with too);
// main() parses, then runs the chosen action inside one error handler:
// mmkit::Error prints "mmkit: error: <message>" and exits 1; usage errors exit 2.
#include <csignal>
#include <cstdio>

#include "cli/cli.h"
#include "mmkit/core/error.h"
#include "mmkit/core/parallel.h"

int main(int argc, char** argv) {
  mmkit::apply_default_wait_policy(argc, argv);
  // A file-size limit (ulimit -f) then fails the write with EFBIG, which the atomic writers report
  // like a full disk ("cannot write ...: File too large"), instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{mmkit::cli::kAppDescription};
  mmkit::cli::Cli c;
  mmkit::cli::register_commands(app, c);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!c.action) return 0;
  try {
    return c.action();
  } catch (const std::exception& e) {  // mmkit::Error and anything else: a message, never a crash
    std::fflush(stdout);
    std::fprintf(stderr, "mmkit: error: %s\n", e.what());
    return 1;
  }
}
