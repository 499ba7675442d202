// `shears eval`: loss, top-1/top-5, per-class accuracy and the confusion matrix of a checkpoint.
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/parallel.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparsify.hpp"

namespace shears::app {

namespace {

struct EvalConfig {
  std::string weights, results_file;
  ForeignModel foreign;
  DataChoice data;
  int64_t batch_size = 256;
  int threads = 0;
  std::string sparse = "auto";
};

// --results-file: the figures as JSON, with timm's validate keys where they exist.
void write_results(const EvalConfig& c, const OpenedData& d, const nn::Module& model, const EvalResult& r) {
  const data::InputContract& in = d.contract;
  nlohmann::json j{{"model", model.metadata().count("arch") ? model.metadata().at("arch") : c.foreign.model},
                   {"weights", c.weights},
                   {"dataset", d.splits.name},
                   {"images", r.samples},
                   {"loss", r.loss},
                   {"top1", r.top1},
                   {"top1_err", 100 - r.top1},
                   {"top5", r.top5},
                   {"top5_err", 100 - r.top5},
                   {"nonfinite", r.nonfinite},
                   {"param_count", model.num_parameters()},
                   {"img_size", d.input_size},
                   {"in_chans", d.channels}};
  if (in.resize == data::EvalResize::resize_crop) {
    j["crop_pct"] = in.crop_pct;
    j["interpolation"] = data::interpolation_name(in.interpolation);
  }
  std::ofstream out(c.results_file);
  out << j.dump(1) << "\n";
  SHEARS_CHECK(out.flush().good(), "--results-file", c.results_file, ": cannot write");
}

int run(const EvalConfig& c) {
  if (c.threads > 0) set_num_threads(c.threads);
  auto [model, d, skipped] = open_weights(c.weights, c.foreign, c.data);
  nn::SparsifyOptions sparse;
  sparse.mode = nn::parse_sparse_mode(c.sparse);
  sparse.freeze = true;  // evaluation only reads the weights
  int64_t sparse_layers = 0;
  for (const nn::SparseChoice& choice : nn::sparsify(*model, sparse)) sparse_layers += choice.sparse;
  if (sparse_layers > 0)
    std::printf("%lld layers run on the sparse kernels (--sparse %s)\n", (long long)sparse_layers, c.sparse.c_str());
  data::DataLoader loader(d.splits.test, d.test_transform,
                          {c.batch_size, false, false, c.data.seed, c.data.workers, 2});
  EvalResult r = evaluate(*model, loader, d.num_classes);
  std::printf("%s on %s test (%lld images): loss %.4f  top-1 %.2f%%  top-5 %.2f%%  %.0f images/s\n", c.weights.c_str(),
              d.splits.name.c_str(), (long long)r.samples, r.loss, r.top1, r.top5, r.samples / r.seconds);
  if (r.nonfinite > 0)
    std::printf(
        "%lld of %lld images have non-finite logits (NaN or infinity): counted wrong; the model has diverged "
        "or its weights overflow\n",
        (long long)r.nonfinite, (long long)r.samples);
  if (!c.results_file.empty()) write_results(c, d, *model, r);
  const auto& classes = d.splits.test->classes();
  std::printf("\nper-class accuracy and confusion matrix (rows: true class, columns: predicted)\n");
  std::printf("%-14s %7s |", "class", "acc %");
  for (size_t j = 0; j < classes.size(); ++j) std::printf(" %5zu", j);
  if (r.nonfinite) std::printf(" %5s", "NaN");  // the column of non-finite rows
  std::printf("\n");
  for (size_t i = 0; i < classes.size(); ++i) {
    int64_t total = 0;
    for (int64_t v : r.confusion[i]) total += v;
    std::printf("%2zu %-11.11s %7.2f |", i, classes[i].c_str(), total ? 100.0 * r.confusion[i][i] / total : 0.0);
    for (size_t j = 0; j < classes.size() + (r.nonfinite ? 1 : 0); ++j)
      std::printf(" %5lld", (long long)r.confusion[i][j]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset's test split");
  auto c = std::make_shared<EvalConfig>();
  add_checkpoint_and_data_flags(*cli, c->weights, c->foreign, c->data);
  cli->add_option("--batch-size,-b", c->batch_size)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--threads", c->threads)->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_option("--sparse", c->sparse,
                  "pruned layers on the sparse kernels: auto (where the density table says it is faster), on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cli->add_option("--results-file", c->results_file, "also write the figures to FILE.json");
  return {cli, [c] { return run(*c); }};
}

}  // namespace shears::app
