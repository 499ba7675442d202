// The input contract: what a model was trained on and how one image becomes its input. Training
// writes it into every checkpoint's metadata (keys "input.*", docs/checkpoints.md lists them),
// and eval, prune, sweep and predict rebuild the evaluation pipeline from it — the same
// normalisation and resizing, the same class order — and check the data they are given against it
// before any work.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/transforms.hpp"

namespace shears::data {

// How a stored image becomes the model's input at evaluation, before ToFloat and Normalize.
enum class EvalResize {
  none,         // the stored size is the input size
  pad,          // `pad` pixels of zeros on each side (Fashion-MNIST 28 -> 32: 2)
  resize_crop,  // ResizeCenterCrop with crop_pct and interpolation (image folders)
};

struct InputContract {
  std::string dataset;                          // a dataset name (open_dataset's), "image-folder" for a folder
  int64_t channels = 0, height = 0, width = 0;  // the model's input image
  std::vector<float> mean, std;                 // per channel, on ToFloat's [0, 1] scale
  std::vector<std::string> classes;             // label k is classes[k]
  EvalResize resize = EvalResize::none;
  int64_t pad = 0;
  double crop_pct = 0.875;
  Interpolation interpolation = Interpolation::bilinear;
};

// The metadata keys of `contract`, all "input.*".
std::map<std::string, std::string> contract_metadata(const InputContract& contract);
// The contract a checkpoint's metadata holds; nullopt when it holds none (weights from elsewhere, a
// checkpoint written before contracts). A malformed key is refused naming `path` and the key.
std::optional<InputContract> contract_from_metadata(const std::map<std::string, std::string>& metadata,
                                                    const std::string& path);

// ResizeCenterCrop or Pad as the contract says, then normalization(contract). Without a resize, an
// image of another size than the stored one is refused.
Compose eval_transform(const InputContract& contract);
// ToFloat, then Normalize(mean, std): the end of every pipeline for this model.
Compose normalization(const InputContract& contract);

}  // namespace shears::data
