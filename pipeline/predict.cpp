#include "pipeline/predict.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.hpp"
#include "data/image_folder.hpp"
#include "data/loader.hpp"
#include "nn/models/registry.hpp"
#include "train/evaluate.hpp"

namespace shears::pipeline {

namespace {

// The file of an image folder's sample (through any subsets), else "<split>[index]".
std::string sample_name(const data::Dataset& images, int64_t index, const std::string& split) {
  const data::Dataset* base = &images;
  int64_t i = index;
  while (const auto* subset = dynamic_cast<const data::Subset*>(base)) {
    i = subset->indices().at(static_cast<size_t>(i));
    base = subset->base().get();
  }
  if (const auto* folder = dynamic_cast<const data::ImageFolder*>(base)) return folder->file(i).string();
  std::string name = split;
  return name.append("[").append(std::to_string(index)).append("]");
}

// The k most probable classes of one row of logits (ties: the lower class first, as top-k
// accuracy counts them) with their softmax probabilities, in double.
void rank(const float* row, int64_t classes, int64_t k, Prediction& p) {
  const double top = *std::max_element(row, row + classes);
  double total = 0.0;
  for (int64_t c = 0; c < classes; ++c) total += std::exp(static_cast<double>(row[c]) - top);
  std::vector<int64_t> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [row](int64_t a, int64_t b) { return row[a] > row[b]; });
  for (int64_t i = 0; i < std::min(k, classes); ++i) {
    p.top.push_back(order[i]);
    p.probabilities.push_back(std::exp(static_cast<double>(row[order[i]]) - top) / total);
  }
}

}  // namespace

PredictInputs open_predict_inputs(const std::string& weights, const ForeignModel& foreign,
                                  const data::DataChoice& choice, const std::vector<std::string>& paths,
                                  const std::string& split) {
  if (!paths.empty() && foreign.model.empty()) {
    std::shared_ptr<nn::Module> model = nn::load_model(weights);
    if (auto contract = model_contract(*model, weights)) {
      const int64_t outputs = nn::options_from_metadata(model->metadata()).num_classes;
      SHEARS_CHECK(outputs == static_cast<int64_t>(contract->classes.size()), weights, "the model has ", outputs,
                   " outputs but its input contract names ", contract->classes.size(), " classes");
      auto images = data::load_image_files(
          paths, {.channels = contract->channels, .max_pixels = choice.max_image_pixels}, contract->classes);
      return {model, images, data::eval_transform(*contract), contract->classes, images->skipped(), {}};
    }
  }
  ModelData md = open_checkpoint(weights, foreign, choice);
  const data::OpenedData& d = md.data;
  if (paths.empty()) {
    const auto& images = split == "train" ? data::training_images(d, "predict --split train")
                         : split == "val" ? d.splits.val
                                          : d.splits.test;
    SHEARS_CHECK(images != nullptr, "--split", split, ": no such split here (val needs --val-fraction)");
    return {md.model, images, d.test_transform, d.contract.classes, 0, md.skipped};
  }
  // Weights without a contract: the data named the pipeline; the images go through it.
  auto images = data::load_image_files(paths, {.channels = d.channels, .max_pixels = choice.max_image_pixels},
                                       d.contract.classes);
  return {md.model, images, data::eval_transform(d.contract), d.contract.classes, images->skipped(), md.skipped};
}

std::vector<Prediction> predict(nn::Module& model, const std::shared_ptr<const data::Dataset>& images,
                                const data::Compose& transform, const PredictOptions& o) {
  SHEARS_CHECK(o.top_k > 0, "predict", "top_k must be positive, got ", o.top_k);
  data::DataLoader loader(images, transform, {o.batch_size, false, false, 0, o.workers, 2});
  std::vector<Prediction> out;
  train::forward_batches(model, loader, [&](const Tensor& logits, const Batch& batch) {
    const int64_t classes = logits.size(1);
    for (int64_t i = 0; i < logits.size(0); ++i) {
      const float* row = logits.data() + i * classes;
      Prediction p;
      p.name = sample_name(*images, batch.indices[i], o.split_name);
      p.label = batch.labels[i];
      if (std::all_of(row, row + classes, [](float v) { return std::isfinite(v); })) rank(row, classes, o.top_k, p);
      if (o.logits) p.logits.assign(row, row + classes);
      out.push_back(std::move(p));
    }
  });
  return out;
}

namespace {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

std::string to_csv(const std::vector<Prediction>& predictions, const std::vector<std::string>& classes) {
  const size_t k = predictions.empty() ? 0 : predictions.front().top.size();
  const bool logits = !predictions.empty() && !predictions.front().logits.empty();
  std::string text = "image,label";
  for (size_t i = 1; i <= k; ++i)
    for (const char* column : {",class_", ",name_", ",probability_"}) text.append(column).append(std::to_string(i));
  for (size_t c = 0; logits && c < classes.size(); ++c) text.append(",logit_").append(std::to_string(c));
  text += '\n';
  char number[32];
  for (const Prediction& p : predictions) {
    text.append(csv_field(p.name)).append(",").append(p.label >= 0 ? std::to_string(p.label) : "");
    for (size_t i = 0; i < k; ++i) {  // a row of non-finite logits ranks nothing: empty fields
      if (i >= p.top.size()) {
        text += ",,,";
        continue;
      }
      std::snprintf(number, sizeof number, "%.6g", p.probabilities[i]);
      text.append(",").append(std::to_string(p.top[i])).append(",").append(csv_field(classes.at(p.top[i])));
      text.append(",").append(number);
    }
    for (float v : p.logits) {
      std::snprintf(number, sizeof number, "%.9g", v);
      text += std::string(",") + number;
    }
    text += '\n';
  }
  return text;
}

std::string to_json(const std::vector<Prediction>& predictions, const std::vector<std::string>& classes) {
  nlohmann::json all = nlohmann::json::array();
  for (const Prediction& p : predictions) {
    nlohmann::json top = nlohmann::json::array();
    for (size_t i = 0; i < p.top.size(); ++i)
      top.push_back({{"class", p.top[i]}, {"name", classes.at(p.top[i])}, {"probability", p.probabilities[i]}});
    nlohmann::json row{{"image", p.name}, {"top", top}};
    row["label"] = p.label >= 0 ? nlohmann::json(p.label) : nlohmann::json(nullptr);
    if (!p.logits.empty()) row["logits"] = p.logits;
    all.push_back(std::move(row));
  }
  return all.dump(1) + "\n";
}

}  // namespace

void write_predictions(const std::string& path, const std::vector<Prediction>& predictions,
                       const std::vector<std::string>& classes) {
  const bool json = std::filesystem::path(path).extension() == ".json";
  const std::string text = json ? to_json(predictions, classes) : to_csv(predictions, classes);
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary);
    out << text;
    SHEARS_CHECK(out.flush().good(), "predict", path, ": cannot write");
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  SHEARS_CHECK(!ec, "predict", path, ": cannot write (", ec.message(), ")");
}

}  // namespace shears::pipeline
