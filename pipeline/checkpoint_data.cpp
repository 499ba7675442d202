#include "pipeline/checkpoint_data.hpp"

#include "core/error.hpp"
#include "nn/models/registry.hpp"

namespace shears::pipeline {

std::optional<data::InputContract> model_contract(const nn::Module& model, const std::string& path) {
  return data::contract_from_metadata(model.metadata(), path);
}

data::OpenedData open_model_data(nn::Module& model, const std::string& path, data::DataChoice choice) {
  const std::optional<data::InputContract> contract = model_contract(model, path);
  const nn::ModelOptions o = nn::options_from_metadata(model.metadata());
  if (!contract) {  // an older checkpoint: its shape at least chooses the input
    if (!choice.channels) choice.channels = o.in_channels;
    if (!choice.input_size) choice.input_size = o.input_size;
  }
  data::OpenedData d = data::open_data(choice, contract ? &*contract : nullptr);
  SHEARS_CHECK(d.channels == o.in_channels && d.input_size == o.input_size && d.num_classes == o.num_classes, path,
               "the model takes ", o.in_channels, "x", o.input_size, "x", o.input_size, " images into ", o.num_classes,
               " classes; --data ", d.splits.name, " gives ", d.channels, "x", d.input_size, "x", d.input_size,
               " images of ", d.num_classes, " classes (--data, --in-channels, --input-size)");
  return d;
}

ModelData open_checkpoint(const std::string& weights, const ForeignModel& foreign, const data::DataChoice& choice) {
  SHEARS_CHECK(!foreign.non_strict || !foreign.model.empty(), "--non-strict",
               "applies to weights without shears' metadata (--model NAME); a shears checkpoint loads strictly");
  if (foreign.model.empty()) {
    std::shared_ptr<nn::Module> model = nn::load_model(weights);
    data::OpenedData d = open_model_data(*model, weights, choice);
    return {std::move(model), std::move(d), {}};
  }
  data::OpenedData d = data::open_data(choice);
  nn::ModelOptions o;
  o.in_channels = d.channels;
  o.num_classes = foreign.num_classes > 0 ? foreign.num_classes : d.num_classes;
  o.input_size = d.input_size;
  o.variant = nn::parse_variant(foreign.variant);
  nn::LoadReport skipped;
  std::shared_ptr<nn::Module> model =
      nn::load_foreign_model(weights, foreign.model, o, foreign.non_strict ? &skipped : nullptr);
  SHEARS_CHECK(o.num_classes == d.num_classes, weights, "the model's head has ", o.num_classes, " classes, --data ",
               d.splits.name, " has ", d.num_classes);
  for (const auto& [key, value] : data::contract_metadata(d.contract)) model->metadata()[key] = value;
  return {std::move(model), std::move(d), std::move(skipped)};
}

}  // namespace shears::pipeline
