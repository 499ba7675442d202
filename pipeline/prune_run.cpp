#include "pipeline/prune_run.hpp"

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/machine.hpp"
#include "core/profile.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparse_checkpoint.hpp"

namespace shears::pipeline {

double PruneOutcome::compression() const { return static_cast<double>(dense_counts.size) / counts.size_nz; }
double PruneOutcome::theoretical_speedup() const { return static_cast<double>(dense_counts.macs) / counts.macs_nz; }
double PruneOutcome::measured_speedup() const { return dense_latency.median_ms / latency.median_ms; }

PruneOutcome prune_and_measure(nn::Module& model, const data::OpenedData& d, const PruneRunOptions& o) {
  std::shared_ptr<nn::Module> dense = model.clone();
  const Shape input = data::image_shape(d);
  auto evaluated = [&](const char* label, const train::EvalResult& r) {
    if (o.evaluated) o.evaluated(label, r);
  };
  data::DataLoader test(d.splits.test, d.test_transform, {256, false, false, o.seed, o.workers, 2});
  test.start_epoch(0);
  std::optional<data::Batch> first = test.next();
  SHEARS_CHECK(first.has_value(), "--data " + d.splits.name, "the test split is empty");
  const Tensor probe = first->images;  // the batch timed for the measured speed-up
  PruneOutcome out;
  out.dense = train::evaluate(model, test, d.num_classes);
  evaluated("dense", out.dense);
  out.dense_counts = prune::count_size(model, input);

  const auto start = std::chrono::steady_clock::now();
  prune::prune_model(model, o.method, o.context, o.bn_batches);
  out.prune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nn::sparsify(model, o.sparse);
  out.pruned = out.final_eval = train::evaluate(model, test, d.num_classes);
  evaluated("pruned", out.pruned);
  if (o.finetune.epochs > 0) {
    train::fine_tune(model, o.finetune, data::training_images(d, "--finetune-epochs"), d.train_transform, o.seed,
                     o.finetune_hooks);
    out.final_eval = train::evaluate(model, test, d.num_classes);
    evaluated("fine-tuned", out.final_eval);
  }
  out.counts = prune::count_size(model, input);
  // Latency as deployed: a copy whose sparse forms are frozen (no gather from the dense weights).
  auto deployed = model.clone();
  nn::SparsifyOptions frozen = o.sparse;
  frozen.freeze = true;
  const std::vector<nn::SparseChoice> choices = nn::sparsify(*deployed, frozen);
  std::tie(out.dense_latency, out.latency) = prune::time_inference(*dense, *deployed, probe, o.latency_runs);
  out.latency_batch = probe.size(0);
  out.layers = prune::layer_densities(*dense, model);
  out.layer_times = time_layers(*dense, *deployed, choices, probe, std::max<int64_t>(1, o.latency_runs / 2));
  return out;
}

std::vector<LayerTime> time_layers(nn::Module& dense, nn::Module& pruned, const std::vector<nn::SparseChoice>& choices,
                                   const Tensor& images, int64_t runs) {
  NoGradGuard no_grad;
  auto forward_ms = [&](nn::Module& model) {
    model.eval();
    model(images);
    profile::Session session;
    for (int64_t r = 0; r < runs; ++r) model(images);
    std::map<std::string, double> ms;
    for (const profile::Entry& e : session.entries())
      ms[e.layer] += e.forward_seconds * 1e3 / static_cast<double>(runs);
    return ms;
  };
  const std::map<std::string, double> a = forward_ms(dense), b = forward_ms(pruned);
  std::vector<LayerTime> out;
  for (const nn::SparseChoice& c : choices) {
    const std::string layer = c.name.substr(0, c.name.size() - std::string(".weight").size());
    auto at = [&](const std::map<std::string, double>& m) { return m.count(layer) ? m.at(layer) : 0.0; };
    out.push_back({c.name, c.density, at(a), at(b), c.sparse});
  }
  return out;
}

namespace {

nlohmann::ordered_json to_json(const train::EvalResult& r) {
  return {{"loss", r.loss}, {"acc1", r.top1}, {"acc5", r.top5}};
}

nlohmann::ordered_json layer_rows(const std::vector<prune::LayerDensity>& layers) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const prune::LayerDensity& l : layers)
    rows.push_back({{"name", l.name},
                    {"shape_dense", l.before},
                    {"shape_pruned", l.after},
                    {"nonzero", l.nonzero},
                    {"sparsity", l.sparsity()}});
  return rows;
}

nlohmann::ordered_json layer_time_rows(const std::vector<LayerTime>& times) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const LayerTime& t : times)
    rows.push_back({{"name", t.name},
                    {"density", t.density},
                    {"kernels", t.sparse ? "sparse" : "dense"},
                    {"dense", t.dense_ms},
                    {"pruned", t.pruned_ms}});
  return rows;
}

}  // namespace

std::pair<int64_t, int64_t> write_prune_outputs(const std::filesystem::path& folder, const nn::Module& model,
                                                const std::string& dataset, const PruneOutcome& o,
                                                const PruneRecord& r) {
  std::filesystem::create_directories(folder);
  std::map<std::string, std::string> meta = nn::refreshed_metadata(model);  // a channel-pruned cnn's cfg
  meta.insert({{"pruning", r.description},
               {"target_sparsity", std::to_string(r.target_sparsity)},
               {"test_top1", std::to_string(o.final_eval.top1)}});
  const std::filesystem::path file = folder / "pruned.safetensors", dense = folder / "dense-size.safetensors";
  model.save_checkpoint(dense.string(), meta, nn::MaskFormat::dense);  // only to compare the sizes
  const auto dense_bytes = static_cast<int64_t>(std::filesystem::file_size(dense));
  std::filesystem::remove(dense);
  if (r.sparse_file)
    nn::save_sparse_checkpoint(model, file.string(), meta);
  else
    model.save_checkpoint(file.string(), meta);
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(file));
  nlohmann::ordered_json metrics = {
      {"model", model.metadata().at("arch")},
      {"weights", r.weights},
      {"dataset", dataset},
      {"method", r.method},
      {"structured", r.structured},
      {"distribution", r.distribution},
      {"target_sparsity", r.target_sparsity},
      {"sparsity", prune::total_sparsity(o.layers)},
      {"size", o.dense_counts.size},
      {"size_nz", o.counts.size_nz},
      {"size_pruned_model", o.counts.size},
      {"compression_ratio", o.compression()},
      {"flops", 2 * o.dense_counts.macs},
      {"flops_nz", 2 * o.counts.macs_nz},
      {"macs", o.dense_counts.macs},
      {"macs_nz", o.counts.macs_nz},
      {"theoretical_speedup", o.theoretical_speedup()},
      {"loss", o.final_eval.loss},
      {"acc1", o.final_eval.top1},
      {"acc5", o.final_eval.top5},
      {"dense", to_json(o.dense)},
      {"pruned", to_json(o.pruned)},
      {"finetune_epochs", r.finetune_epochs},
      {"latency_ms",
       {{"batch", o.latency_batch},
        {"dense", {{"median", o.dense_latency.median_ms}, {"std", o.dense_latency.std_ms}}},
        {"pruned", {{"median", o.latency.median_ms}, {"std", o.latency.std_ms}}}}},
      {"measured_speedup", o.measured_speedup()},
      {"prune_seconds", o.prune_seconds},
      {"layers", layer_rows(o.layers)},
      {"layer_forward_ms", layer_time_rows(o.layer_times)},
      {"file_bytes", {{"format", r.sparse_file ? "sparse" : "masked"}, {"pruned", bytes}, {"dense", dense_bytes}}}};
  if (r.structured) metrics["importance"] = r.importance;
  if (r.finetune_epochs > 0) metrics["finetuned"] = to_json(o.final_eval);
  metrics["machine"] = nlohmann::json::parse(machine_json(this_machine()));
  std::ofstream out(folder / "metrics.json");
  out << metrics.dump(2) << '\n';
  SHEARS_CHECK(out.good(), (folder / "metrics.json").string(), "cannot write the metrics");
  return {bytes, dense_bytes};
}

}  // namespace shears::pipeline
