// `shears report`: the four papers' central claims measured on one dataset, as report.md
// (pipeline/report.hpp runs the plan and writes the report).
#include "pipeline/report.hpp"

#include <cstdio>

#include "apps/commands.hpp"

namespace shears::app {

Command add_report_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("report", "Reproduce the four papers' central claims and write report.md");
  auto c = std::make_shared<pipeline::ReportOptions>();
  cli->add_option("--output,-o", c->output, "the report folder (resumable)")->required();
  auto* quick = cli->add_flag("--quick")->description("a smoke-scale plan, a minute or two on 2 cores (the default)");
  cli->add_flag("--full", c->full, "the plan the claims deserve: more epochs, sparsities and seeds (hours)")
      ->excludes(quick);
  cli->add_option("--seeds", c->seeds, "seeds (dense models per network); default 1 quick, 3 full")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cli->add_option("--data", c->data, "dataset name or folder")->capture_default_str();
  cli->add_option("--data-dir", c->data_dir, "where datasets live");
  cli->add_option("--limit-train", c->limit_train, "use only the first N training images (smoke tests)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli->add_option("--limit-test", c->limit_test, "use only the first N test images (smoke tests)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cli->add_option("--threads", c->threads, "threads per step (0: SHEARS_NUM_THREADS or all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  return {cli, [c] {
            c->log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
            pipeline::run_report(*c);
            return 0;
          }};
}

}  // namespace shears::app
