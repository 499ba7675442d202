// `shears predict`: the top-k classes of images (files or folders) or of a dataset split, with
// their probabilities (and the logits, for parity checks), printed or written as CSV or JSON.
#include "pipeline/predict.hpp"

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/parallel.hpp"
#include "data/image_folder.hpp"
#include "nn/models/registry.hpp"

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

struct Inputs {
  std::shared_ptr<nn::Module> model;
  std::shared_ptr<const data::Dataset> images;
  data::Compose transform;
  std::vector<std::string> classes;
};

// The model with its images: --images through the checkpoint's contract, or the data's test split.
Inputs open_inputs(const PredictConfig& c) {
  if (!c.images.empty() && c.foreign.model.empty()) {
    std::shared_ptr<nn::Module> model = nn::load_model(c.weights);
    if (auto contract = pipeline::model_contract(*model, c.weights)) {
      const int64_t outputs = nn::options_from_metadata(model->metadata()).num_classes;
      SHEARS_CHECK(outputs == static_cast<int64_t>(contract->classes.size()), c.weights, "the model has ", outputs,
                   " outputs but its input contract names ", contract->classes.size(), " classes");
      auto images = data::load_image_files(
          c.images, {.channels = contract->channels, .max_pixels = c.data.max_image_pixels}, contract->classes);
      if (images->skipped())
        std::printf("skipped %lld files without an image extension\n", (long long)images->skipped());
      return {model, images, data::eval_transform(*contract), contract->classes};
    }
  }
  auto [model, d, skipped] = open_weights(c.weights, c.foreign, c.data);
  if (c.images.empty()) {
    const auto& split = c.split == "train" ? data::training_images(d, "predict --split train")
                        : c.split == "val" ? d.splits.val
                                           : d.splits.test;
    SHEARS_CHECK(split != nullptr, "--split", "val: no validation split (give --val-fraction)");
    return {model, split, d.test_transform, d.contract.classes};
  }
  // Weights without a contract: the data named the pipeline; the images go through it.
  auto images = data::load_image_files(c.images, {.channels = d.channels, .max_pixels = c.data.max_image_pixels},
                                       d.contract.classes);
  return {model, images, data::eval_transform(d.contract), d.contract.classes};
}

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
  Inputs in = open_inputs(c);
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
