// A trained model and the data it runs on, opened together: a shears checkpoint's input contract
// chooses the dataset when none is named, gives the statistics and the evaluation pipeline, and
// the data is checked against it (channels, size, classes) before any work; weights from
// elsewhere take their shape from the data and get its contract.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/prepare.hpp"
#include "nn/module.hpp"

namespace shears::pipeline {

// What --model, --variant and --num-classes say of weights without shears' metadata (a PyTorch
// state_dict saved as safetensors); their input channels are the data's (--in-channels).
struct ForeignModel {
  std::string model, variant = "cifar";
  int64_t num_classes = 0;  // 0: the data's
  bool non_strict = false;  // load what matches, list the rest (nn::load_foreign_model)
};

struct ModelData {
  std::shared_ptr<nn::Module> model;
  data::OpenedData data;
  nn::LoadReport skipped;  // a non-strict load's missing, unexpected and mis-shaped tensors
};

// The input contract a model's metadata holds (a checkpoint's "input.*" keys), if any.
std::optional<data::InputContract> model_contract(const nn::Module& model, const std::string& path);

// The data for `model` (loaded from `path`): its contract's, checked; for a checkpoint without
// one, its recorded channels, size and classes are checked against the data instead. The model's
// metadata then holds the contract in use (--mean/--std overrides included), which is what files
// saved from it record.
data::OpenedData open_model_data(nn::Module& model, const std::string& path, data::DataChoice choice);

// The model of `weights` and its data, as above; the model's metadata then holds the data's
// contract, so what is saved from it carries one.
ModelData open_checkpoint(const std::string& weights, const ForeignModel& foreign, const data::DataChoice& choice);

}  // namespace shears::pipeline
