// Multi-layer perceptrons on flattened images: fc1 · [bn1] · ReLU · fc2 · [bn2] · ReLU … fcN,
// registered in that order (state_dict: fc1.*, bn1.*, fc2.* …).
//   mlpnet — the MNIST net of the WoodFisher, CHITA and SWAP papers: 784-40-20-10, ReLU, no biases
//            by default (as their MlpNet), names fc1..fc3. Their forward ends in log_softmax for an
//            NLL loss; this one returns the logits, and cross_entropy on logits is the same loss.
//   mlp    — the same with any hidden widths (e.g. 784-300-100-10, 784-128-128-10); biases by default.
// The input layer takes in_channels · input_size² features. widths: the hidden widths (mlpnet's
// default 40, 20; mlp has none by default, i.e. a linear classifier). batch_norm adds BatchNorm1d
// after each hidden Linear. Init: PyTorch's Linear default.
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.hpp"
#include "nn/models/common.hpp"

namespace shears::nn {

class Mlp : public Cloneable<Mlp> {
 public:
  Mlp(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes, bool bias, bool batch_norm,
      Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  const char* type_name() const override { return "MLP"; }

 private:
  int64_t layers_;
};

std::shared_ptr<Mlp> mlpnet(const ModelOptions& options, Generator& gen = default_generator());
std::shared_ptr<Mlp> mlp(const ModelOptions& options, Generator& gen = default_generator());

// The hidden widths of an mlp state_dict: the out-features of fc1 … fc(N-1).
std::vector<int64_t> mlp_widths_from_state_dict(const std::vector<safetensors::Entry>& state);

}  // namespace shears::nn
