// BatchNorm re-estimation (docs/algorithms/baselines.md#bn-recalibration); see bn_recalibrate.hpp.
#include "prune/bn_recalibrate.hpp"

#include <map>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "nn/layers.hpp"

namespace shears::prune {

namespace {

// Running sums over batches of one BatchNorm's per-channel batch mean and unbiased variance.
struct Moments {
  std::vector<double> mean, var;
};

// x (N, C) or (N, C, H, W): adds this batch's per-channel mean and unbiased variance to `acc`.
void accumulate(const Tensor& x, Moments& acc) {
  const int64_t n = x.size(0), c = x.size(1), inner = x.numel() / (n * c);
  if (acc.mean.empty()) acc.mean.assign(c, 0.0), acc.var.assign(c, 0.0);
  const float* p = x.data();
  const double count = static_cast<double>(n * inner);
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < inner; ++j) {
        double v = p[(i * c + ch) * inner + j];
        s += v;
        s2 += v * v;
      }
    double mean = s / count;
    acc.mean[ch] += mean;
    acc.var[ch] += count > 1 ? (s2 - count * mean * mean) / (count - 1) : 0.0;
  }
}

}  // namespace

void recalibrate_batch_norm(nn::Module& model, const std::vector<Batch>& batches) {
  std::vector<nn::BatchNorm*> layers;
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(m); bn != nullptr && bn->config().track_running_stats)
      layers.push_back(bn);
  if (layers.empty()) return;
  SHEARS_CHECK(!batches.empty(), "recalibrate_batch_norm", "no batches to estimate ", layers.size(),
               " BatchNorm layer(s) from");

  std::map<const nn::Module*, Moments> moments;
  {
    const bool was_training = model.is_training();
    nn::ForwardObserver observer([&](const nn::Module& m, const Tensor& input, const Tensor&) {
      if (auto* bn = dynamic_cast<const nn::BatchNorm*>(&m); bn != nullptr && bn->config().track_running_stats)
        accumulate(input, moments[&m]);
    });
    NoGradGuard no_grad;
    model.train();
    for (const Batch& b : batches) model(b.images);
    model.train(was_training);
  }

  const double k = static_cast<double>(batches.size());
  for (nn::BatchNorm* bn : layers) {
    auto it = moments.find(bn);
    if (it == moments.end()) continue;  // a registered BatchNorm the forward never calls
    const Moments& acc = it->second;
    float* mean = bn->buffer("running_mean").data();
    float* var = bn->buffer("running_var").data();
    for (size_t ch = 0; ch < acc.mean.size(); ++ch) {
      mean[ch] = static_cast<float>(acc.mean[ch] / k);
      var[ch] = static_cast<float>(acc.var[ch] / k);
    }
    bn->buffer("num_batches_tracked").data()[0] = static_cast<float>(k);
  }
}

}  // namespace shears::prune
