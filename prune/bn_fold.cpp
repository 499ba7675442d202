// Batch-norm folding (docs/algorithms/baselines.md#bn-folding; see bn_fold.hpp for the departures from the reference).
#include "prune/bn_fold.hpp"

#include <cmath>
#include <map>
#include <memory>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "nn/layers.hpp"

namespace shears::prune {
namespace {

// Puts in place of the producer at `path` the same layer with (a zero bias) or without a bias,
// keeping its weight and mask.
void rebuild_producer(nn::Module& model, const std::string& path, bool with_bias) {
  nn::Module& old = model[path];
  SHEARS_CHECK(!path.empty(), "fold_batch_norm", "the model itself is the producer: cannot change its bias");
  Tensor w = old.parameter("weight");
  Generator unused_init(0);  // the weights are overwritten; keep the default generator untouched
  std::shared_ptr<nn::Module> fresh;
  if (auto* conv = dynamic_cast<nn::Conv2d*>(&old)) {
    nn::Conv2dConfig config = conv->config();
    config.bias = with_bias;
    fresh = std::make_shared<nn::Conv2d>(conv->in_channels(), conv->out_channels(), nn::Size2(w.size(2), w.size(3)),
                                         config, unused_init);
  } else {
    fresh = std::make_shared<nn::Linear>(w.size(1), w.size(0), with_bias, unused_init);
  }
  fresh->train(old.is_training());
  fresh->set_parameter("weight", w);
  if (with_bias) fresh->set_parameter("bias", Tensor::zeros({w.size(0)}));
  if (old.has_mask("weight")) fresh->set_mask("weight", old.mask("weight"));
  model.replace(path, fresh);
}

}  // namespace

bool fold_batch_norm(nn::Module& model, const std::string& producer, const std::string& norm) {
  nn::Module& p = model[producer];
  SHEARS_CHECK(dynamic_cast<nn::Conv2d*>(&p) || dynamic_cast<nn::Linear*>(&p), "fold_batch_norm", "'", producer,
               "' is a ", p.type_name(), ", expected a Conv2d or Linear");
  auto* bn = dynamic_cast<nn::BatchNorm*>(&model[norm]);
  SHEARS_CHECK(bn != nullptr, "fold_batch_norm", "'", norm, "' is a ", model[norm].type_name(),
               ", expected a BatchNorm");
  SHEARS_CHECK(bn->has_buffer("running_mean") && bn->has_buffer("running_var"), "fold_batch_norm", "'", norm,
               "' keeps no running statistics (track_running_stats = false): nothing to fold");
  const int64_t channels = p.parameter("weight").size(0);
  SHEARS_CHECK(bn->num_features() == channels, "fold_batch_norm", "'", norm, "' has ", bn->num_features(),
               " features but '", producer, "' has ", channels, " output channels");
  const bool added_bias = !p.has_parameter("bias");
  if (added_bias) rebuild_producer(model, producer, true);
  nn::Module& layer = model[producer];
  Tensor w = layer.parameter("weight"), b = layer.parameter("bias");
  Tensor mean = bn->buffer("running_mean"), var = bn->buffer("running_var");
  const bool affine = bn->has_parameter("weight");
  const float eps = bn->config().eps;
  const int64_t row = w.numel() / channels;
  for (int64_t c = 0; c < channels; ++c) {
    double gamma = affine ? bn->parameter("weight").data()[c] : 1.0, beta = affine ? bn->parameter("bias").data()[c] : 0.0;
    double scale = gamma / std::sqrt(static_cast<double>(var.data()[c]) + eps);
    for (int64_t i = 0; i < row; ++i) w.data()[c * row + i] = static_cast<float>(w.data()[c * row + i] * scale);
    b.data()[c] = static_cast<float>((b.data()[c] - static_cast<double>(mean.data()[c])) * scale + beta);
    mean.data()[c] = 0.f;
    var.data()[c] = 1.f - eps;
    if (affine) {
      bn->parameter("weight").data()[c] = 1.f;
      bn->parameter("bias").data()[c] = 0.f;
    }
  }
  return added_bias;
}

std::vector<FoldedPair> fold_batch_norms(nn::Module& model, const Shape& input_shape) {
  std::map<const nn::Module*, std::string> path_of;
  for (auto& [path, m] : model.named_modules()) path_of[m] = path;
  std::map<TensorImpl*, std::string> produced_by;  // Conv2d/Linear output → path
  std::map<TensorImpl*, int64_t> readers;           // how many Conv2d/Linear/BatchNorm calls read it
  std::vector<std::pair<std::string, TensorImpl*>> norms;
  std::vector<Tensor> alive;  // keeps the traced tensors (and so their addresses) alive
  bool was_training = model.is_training();
  model.eval();
  try {
    NoGradGuard no_grad;
    nn::ForwardObserver observer([&](const nn::Module& m, const Tensor& in, const Tensor& out) {
      bool producer = dynamic_cast<const nn::Conv2d*>(&m) || dynamic_cast<const nn::Linear*>(&m);
      bool norm = dynamic_cast<const nn::BatchNorm*>(&m) != nullptr;
      if (!producer && !norm) return;
      alive.push_back(in);
      alive.push_back(out);
      ++readers[in.impl()];
      if (producer) produced_by[out.impl()] = path_of.at(&m);
      else norms.emplace_back(path_of.at(&m), in.impl());
    });
    model(Tensor::ones(input_shape));
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  std::vector<FoldedPair> folded;
  for (auto& [norm, input] : norms) {
    auto it = produced_by.find(input);
    if (it == produced_by.end() || readers[input] != 1) continue;
    bool added_bias = fold_batch_norm(model, it->second, norm);
    folded.push_back({it->second, norm, added_bias});
  }
  return folded;
}

void restore_bias_free_producers(nn::Module& model, const std::vector<FoldedPair>& folded) {
  for (const FoldedPair& pair : folded) {
    if (!pair.added_bias || !model[pair.norm].has_parameter("bias")) continue;
    auto& bn = dynamic_cast<nn::BatchNorm&>(model[pair.norm]);
    Tensor bias = model[pair.producer].parameter("bias"), shift = bn.parameter("bias");
    Tensor scale = bn.parameter("weight"), var = bn.buffer("running_var");
    SHEARS_CHECK(bias.shape() == shift.shape(), "restore_bias_free_producers", "'", pair.producer, "' has ",
                 bias.numel(), " output channels but '", pair.norm, "' has ", shift.numel());
    // BN(x + b) = BN(x) + b·γ/√(σ² + eps) in eval mode: the bias moves into β.
    for (int64_t c = 0; c < bias.numel(); ++c)
      shift.data()[c] += static_cast<float>(bias.data()[c] * static_cast<double>(scale.data()[c]) /
                                            std::sqrt(static_cast<double>(var.data()[c]) + bn.config().eps));
    rebuild_producer(model, pair.producer, false);
  }
}

}  // namespace shears::prune
