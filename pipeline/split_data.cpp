#include "pipeline/split_data.hpp"

#include <chrono>
#include <fstream>

#include "core/error.hpp"
#include "core/machine.hpp"
#include "data/loader.hpp"
#include "nn/models/registry.hpp"
#include "prune/algorithms/model_fusion.hpp"
#include "prune/bn_recalibrate.hpp"
#include "prune/methods/registry.hpp"

namespace shears::pipeline {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Combined {
  std::string name;
  std::shared_ptr<nn::Module> model;
  double seconds;  // combining (fusion, pruning), not training
};

prune::PruneContext pruning_context(const data::OpenedData& d, const SplitDataOptions& o) {
  prune::PruneContext context;
  context.target = {o.sparsity, prune::Distribution::per_layer, 1.0};
  context.input_shape = data::image_shape(d);
  context.training_batches = data::batch_factory(d.splits.train, d.train_transform);
  context.batch_size = o.finetune.batch_size;
  context.seed = o.seed;
  return context;
}

bool has_batch_norm(const nn::Module& model) {
  for (const auto& [path, m] : model.named_modules())
    if (std::string(m->type_name()).find("BatchNorm") != std::string::npos) return true;
  return false;
}

std::vector<Combined> combine(const std::vector<std::shared_ptr<nn::Module>>& models, const data::OpenedData& d,
                              const SplitDataOptions& o) {
  const Shape input = data::image_shape(d);
  const prune::PruneContext context = pruning_context(d, o);
  auto pruned = [&](const std::shared_ptr<nn::Module>& m) {
    std::shared_ptr<nn::Module> p = m->clone();
    prune::prune_model(*p, "intrafusion", context);
    return p;
  };
  std::vector<Combined> combined;
  auto timed = [&](const std::string& name, const std::function<std::shared_ptr<nn::Module>()>& make) {
    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<nn::Module> m = make();
    combined.push_back({name, m, seconds_since(start)});
  };
  timed("naive", [&] { return prune::fuse_models(models, input, {.align = false}); });
  timed("ot", [&] { return prune::fuse_models(models, input); });
  timed("paf", [&] {
    std::vector<std::shared_ptr<nn::Module>> each;
    for (const auto& m : models) each.push_back(pruned(m));
    return prune::fuse_models(each, input);
  });
  timed("fap", [&] { return pruned(prune::fuse_models(models, input)); });
  return combined;
}

const train::EvalResult& final_eval(const SplitDataRow& row) {
  return row.after ? *row.after : row.recalibrated ? *row.recalibrated : row.before;
}

}  // namespace

std::vector<SplitDataRow> combine_split_parts(const std::vector<std::shared_ptr<nn::Module>>& parts,
                                              const std::vector<double>& train_seconds, const data::OpenedData& d,
                                              const std::filesystem::path& folder, const SplitDataOptions& o) {
  append_machine_record(folder / "machine.jsonl");
  std::vector<Combined> combined = combine(parts, d, o);
  data::DataLoader test(d.splits.test, d.test_transform, {256, false, false, o.seed, o.workers, 2});
  std::vector<SplitDataRow> rows;
  for (size_t k = 0; k < parts.size(); ++k)
    rows.push_back({"part-" + std::to_string(k),
                    parts[k]->num_parameters(),
                    train::evaluate(*parts[k], test, d.num_classes),
                    {},
                    {},
                    {},
                    0,
                    train_seconds[k]});
  // The same batches for every combination (seed + 1, as pruning's --bn-recalibrate).
  std::vector<Batch> bn_batches;
  if (o.bn_batches > 0 && has_batch_norm(*parts.front()))
    bn_batches = prune::draw_batches(pruning_context(d, o), o.bn_batches, o.seed + 1, "--split-bn-batches");
  for (Combined& m : combined) {
    SplitDataRow row{m.name,   m.model->num_parameters(), train::evaluate(*m.model, test, d.num_classes), {}, {},
                     m.seconds};
    if (!bn_batches.empty()) {
      prune::recalibrate_batch_norm(*m.model, bn_batches);
      row.recalibrated = train::evaluate(*m.model, test, d.num_classes);
    }
    if (o.finetune.epochs > 0) {
      if (o.log) o.log("fine-tuning " + m.name);
      const auto start = std::chrono::steady_clock::now();
      train::fine_tune(*m.model, o.finetune, d.splits.train, d.train_transform, o.seed, o.finetune_hooks);
      row.finetune_seconds = seconds_since(start);
      row.after = train::evaluate(*m.model, test, d.num_classes);
    }
    std::map<std::string, std::string> meta = nn::refreshed_metadata(*m.model);  // PaF/FaP: a cnn's new widths
    meta.insert({{"split_data", std::to_string(parts.size())},
                 {"combination", m.name},
                 {"test_top1", std::to_string(final_eval(row).top1)}});
    m.model->save_checkpoint((folder / (m.name + ".safetensors")).string(), meta);
    rows.push_back(std::move(row));
  }
  return rows;
}

void write_split_table(const std::filesystem::path& folder, const std::vector<SplitDataRow>& rows) {
  std::ofstream csv(folder / "split_data.csv");
  csv << "model,parameters,test_loss,test_top1,finetuned_test_loss,finetuned_test_top1,train_seconds,combine_seconds,"
         "finetune_seconds,recalibrated_test_loss,recalibrated_test_top1\n";
  for (const SplitDataRow& r : rows) {
    csv << r.name << ',' << r.parameters << ',' << r.before.loss << ',' << r.before.top1 << ',';
    if (r.after)
      csv << r.after->loss << ',' << r.after->top1;
    else
      csv << ',';
    csv << ',' << r.train_seconds << ',' << r.combine_seconds.value_or(0) << ',' << r.finetune_seconds << ',';
    if (r.recalibrated)
      csv << r.recalibrated->loss << ',' << r.recalibrated->top1;
    else
      csv << ',';
    csv << '\n';
  }
  SHEARS_CHECK(csv.good(), (folder / "split_data.csv").string(), "cannot write the table");
}

}  // namespace shears::pipeline
