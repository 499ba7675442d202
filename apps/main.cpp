// `shears`: the only place that prints errors and chooses an exit code (DESIGN.md §2.12).
#include <cstdio>
#include <vector>

#include "apps/commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shears: train and prune neural networks on the CPU"};
  app.set_version_flag("--version", shears::kVersion);
  app.require_subcommand(1);
  std::vector<shears::app::Command> commands{
      shears::app::add_info_command(app),
      shears::app::add_train_command(app),
      shears::app::add_eval_command(app),
      shears::app::add_bench_command(app),
      shears::app::add_prune_command(app),
      shears::app::add_sweep_command(app),
      shears::app::add_report_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const auto& command : commands)
      if (command.cli->parsed()) return command.run();
  } catch (const shears::Error& e) {
    std::fprintf(stderr, "shears: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shears: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
