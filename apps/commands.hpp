// Subcommands of the `shears` command line. Each registers its flags on the CLI11 app and
// returns the action to run once the command line has been parsed.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace shears::app {

struct Command {
  CLI::App* cli;             // the parsed subcommand
  std::function<int()> run;  // its action; returns the exit code
};

Command add_info_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_prune_command(CLI::App& app);
Command add_sweep_command(CLI::App& app);
Command add_report_command(CLI::App& app);

}  // namespace shears::app
