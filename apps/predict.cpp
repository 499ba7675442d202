// `shears predict`: the top-k classes of images (files or folders) or of a dataset split, with
// their probabilities (and the logits, for parity checks), printed or written as CSV or JSON.
#include "pipeline/predict.hpp"

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/parallel.hpp"

namespace shears::app {

namespace {

struct PredictConfig {
  std::string weights, output, split = "test";
  std::vector<std::string> images;
  ForeignModel foreign;
  DataChoice data;
  pipeline::PredictOptions predict;
  int threads = 0;
};

void print(const std::vector<pipeline::Prediction>& predictions, const std::vector<std::string>& classes) {
  for (const pipeline::Prediction& p : predictions) {
    std::printf("%s", p.name.c_str());
    for (size_t i = 0; i < p.top.size(); ++i)
      std::printf("  %s %.2f%%", classes.at(p.top[i]).c_str(), 100 * p.probabilities[i]);
    std::printf(p.top.empty() ? "  non-finite logits\n" : "\n");
  }
}

int run(const PredictConfig& c) {
  if (c.threads > 0) set_num_threads(c.threads);
  const pipeline::PredictInputs in = pipeline::open_predict_inputs(c.weights, c.foreign, c.data, c.images, c.split);
  report_load(c.weights, c.foreign, in.skipped_tensors);
  if (in.skipped_files) std::printf("skipped %lld files without an image extension\n", (long long)in.skipped_files);
  pipeline::PredictOptions o = c.predict;
  o.workers = c.data.workers;
  o.split_name = c.split;
  const std::vector<pipeline::Prediction> predictions = pipeline::predict(*in.model, in.images, in.transform, o);
  if (c.output.empty()) {
    print(predictions, in.classes);
    return 0;
  }
  pipeline::write_predictions(c.output, predictions, in.classes);
  std::printf("wrote %s: top-%lld of %zu images\n", c.output.c_str(), (long long)o.top_k, predictions.size());
  return 0;
}

}  // namespace

Command add_predict_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("predict", "Top-k classes of images or of a dataset's test split");
  auto c = std::make_shared<PredictConfig>();
  add_checkpoint_and_data_flags(*cli, c->weights, c->foreign, c->data);
  cli->add_option("--images", c->images, "image files or folders (default: a split of the data)");
  cli->add_option("--split", c->split, "without --images: the data's train, val (--val-fraction) or test split")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  cli->add_option("--top-k", c->predict.top_k)->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cli->add_flag("--logits", c->predict.logits, "keep every class's logit in the output");
  cli->add_option("--output,-o", c->output, "FILE.csv or FILE.json (default: print)");
  cli->add_option("--batch-size,-b", c->predict.batch_size)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--threads", c->threads)->check(CLI::Range(int64_t{0}, int64_t{1024}));
  return {cli, [c] { return run(*c); }};
}

}  // namespace shears::app
