// `--config FILE`: apply_config_file (the strict reader of core/config_file, then each key onto its
// flag) on a subcommand with the kinds of flags shears' subcommands have. `make fuzz` runs it with
// inputs up to the reader's 1 MiB cap, so that depth and length bugs are within reach.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "apps/config_file.hpp"
#include "core/error.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = (shears::fuzz::scratch() / "input.toml").string();
  shears::fuzz::write_file(path, data, size);
  CLI::App app("shears");
  CLI::App* train = app.add_subcommand("train");
  std::string model, sched = "cosine";
  int64_t batch_size = 128;
  double lr = 0.1, sparsity = 0.5;
  bool amp = false;
  std::vector<double> sparsities;
  std::vector<int64_t> widths;
  train->add_option("--model", model);
  train->add_option("--batch-size", batch_size)->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  train->add_option("--lr", lr);
  train->add_option("--sparsity", sparsity)->check(CLI::Range(0.0, 1.0));
  train->add_option("--sched", sched)->check(CLI::IsMember({"cosine", "step", "none"}));
  train->add_option("--sparsities", sparsities)->delimiter(',');
  train->add_option("--widths", widths)->delimiter(',');
  train->add_flag("--amp", amp);
  try {
    app.parse(std::vector<std::string>{"train"});
    shears::app::apply_config_file(*train, path);
  } catch (const shears::Error&) {
  }
  return 0;
}
