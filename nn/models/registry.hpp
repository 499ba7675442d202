// Models by name, for the CLI and for checkpoints: make_model("resnet20", options) builds one and
// records its provenance (arch, in_channels, num_classes, input_size, variant, …) in the module's
// metadata, which save_checkpoint writes; load_model rebuilds a checkpoint's model from that
// metadata and its tensors' shapes, so structurally pruned checkpoints reload.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/models/common.hpp"
#include "nn/module.hpp"

namespace shears::nn {

struct ModelInfo {
  std::string name, description;
};
const std::vector<ModelInfo>& model_catalog();

std::shared_ptr<Module> make_model(const std::string& name, const ModelOptions& options = {},
                                   Generator& gen = default_generator());

// The options as checkpoint metadata strings, and back (keys absent from `metadata` keep the
// value in `defaults`).
std::map<std::string, std::string> model_metadata(const std::string& name, const ModelOptions& options);
ModelOptions options_from_metadata(const std::map<std::string, std::string>& metadata, ModelOptions defaults = {});

// The widths list (see each model's header) that rebuilds the model a state_dict came from:
// mlp/mlpnet's hidden widths, else the out-channels of every Conv2d and every Linear but the
// last, in state_dict order (masked checkpoints' `_orig` tensors count too).
std::vector<int64_t> widths_from_state_dict(const std::string& name, const ModelOptions& options,
                                            const std::vector<safetensors::Entry>& state);

// Builds `name` with the widths of `state` and loads it strictly. Options or shapes that would
// build a model larger than twice the state's tensors are refused before it is allocated.
std::shared_ptr<Module> model_from_state_dict(const std::string& name, ModelOptions options,
                                              const std::vector<safetensors::Entry>& state);

// The options a model's metadata records, read again from its own tensors, for a model whose
// layers changed width (channel pruning): a cnn's cfg then names the widths it has. Pass them as
// save_checkpoint's `extra`; empty for a model make_model did not build.
std::map<std::string, std::string> refreshed_metadata(const Module& model);

// Weights without shears' metadata, e.g. a PyTorch state_dict saved as safetensors: the tensors
// of `path` loaded strictly into `name` built with `options` (its widths read from the tensors),
// after stripping the prefixes "module." (DistributedDataParallel) and "_orig_mod."
// (torch.compile) as timm does. Missing, unexpected and mis-shaped tensors are refused by name.
// With `non_strict`, the model keeps its architecture's default widths, takes the tensors that
// match by name and shape, and *non_strict lists the rest (load_state_dict(strict=False)).
std::shared_ptr<Module> load_foreign_model(const std::string& path, const std::string& name, ModelOptions options,
                                           LoadReport* non_strict = nullptr);

// Fine-tuning from weights (train --initial-checkpoint): the tensors of `path` (a shears checkpoint
// or a PyTorch state_dict, prefixes stripped as load_foreign_model does) loaded into `model`,
// which was built for the new task. Only the classifier (the model's last Linear, weight and bias)
// may differ in shape, when the class count changed: it keeps its fresh initialisation and its
// names are returned. Any other missing, unexpected or mis-shaped tensor is refused by name.
std::vector<std::string> load_initial_weights(Module& model, const std::string& path);

// A checkpoint written by shears (its metadata names the architecture and options), rebuilt; its
// input contract ("input.*" keys) is kept in the model's metadata, so files derived from it
// (pruned, fine-tuned) carry it on.
std::shared_ptr<Module> load_model(const std::string& path);

// Refuses metadata of a checkpoint schema newer than this shears reads (kCheckpointSchema), or a
// malformed "shears.schema"; files without the key (schema 1, weights from elsewhere) pass.
void check_checkpoint_schema(const std::map<std::string, std::string>& metadata, const std::string& path);

}  // namespace shears::nn
