// `shears`: the only place that prints errors and chooses an exit code (docs/design.md#errors).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/error.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  // A closed pipe on stdout or stderr (`shears train … | head`) makes writes fail instead of ending
  // the process: a training goes on and saves (apps/train.cpp notes the failure in its log).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"shears: train and prune neural networks on the CPU"};
  app.set_version_flag("--version", shears::kVersion);
  app.require_subcommand(1);
  std::vector<shears::app::Command> commands{
      shears::app::add_info_command(app),    shears::app::add_train_command(app),  shears::app::add_eval_command(app),
      shears::app::add_predict_command(app), shears::app::add_bench_command(app),  shears::app::add_prune_command(app),
      shears::app::add_sweep_command(app),   shears::app::add_report_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    for (const std::string& hint : shears::app::unknown_flag_hints(app, argc, argv))
      std::fprintf(stderr, "%s\n", hint.c_str());
    return status;
  }
  int status = 0;
  try {
    for (const auto& command : commands)
      if (command.cli->parsed()) return command.run();
  } catch (const shears::Error& e) {
    std::fprintf(stderr, "shears: error: %s\n", e.what());
    status = 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "shears: error: out of memory: the operating system refused an allocation outside the "
                 "tensors (lower --batch-size, --workers or the data size, or raise the memory limit)\n");
    status = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shears: unexpected error: %s\n", e.what());
    status = 2;
  }
  // After an error, leave without the libraries' exit handlers: out of memory, OpenBLAS's shutdown
  // waits for its threads, which retry their own failed allocations for ever. Every file shears
  // writes is complete (written atomically, closed) by the time an error reaches here.
  std::fflush(nullptr);
  std::_Exit(status);
}
