// Per-sample gradients from one backward per block (docs/algorithms/swap.md#per-sample-gradients).
#include "prune/per_sample.hpp"

#include <algorithm>
#include <map>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/ops/conv2d.hpp"
#include "nn/layers.hpp"

namespace shears::prune {
namespace {

struct Watched {
  std::string name, path;
  const nn::Module* module = nullptr;
  int64_t numel = 0, column = 0;  // weight size and its first column in G
  Tensor x, dy;                   // the block's layer input and output gradient
};

}  // namespace

Tensor per_sample_gradients(nn::Module& model, const std::vector<std::string>& names, const Tensor& images,
                            const std::vector<int64_t>& labels, int64_t block) {
  SHEARS_CHECK(block >= 1, "per_sample_gradients", "block must be at least 1, got ", block);
  SHEARS_CHECK(images.dim() >= 1 && images.size(0) == static_cast<int64_t>(labels.size()), "per_sample_gradients",
               "images hold ", images.dim() ? images.size(0) : 0, " samples but there are ", labels.size(), " labels");
  std::vector<Watched> watched;
  std::map<const nn::Module*, size_t> index;
  int64_t p = 0;
  for (const std::string& name : names) {
    SHEARS_CHECK(name.size() > 7 && name.substr(name.size() - 7) == ".weight", "per_sample_gradients", "'", name,
                 "' is not the weight of a Conv2d or Linear module");
    std::string path = name.substr(0, name.size() - 7);
    const nn::Module& m = model[path];
    SHEARS_CHECK(dynamic_cast<const nn::Conv2d*>(&m) || dynamic_cast<const nn::Linear*>(&m), "per_sample_gradients",
                 "'", path, "' is a ", m.type_name(), ", not a Conv2d or Linear");
    int64_t numel = model.parameter(name).numel();
    index[&m] = watched.size();
    watched.push_back({name, path, &m, numel, p, {}, {}});
    p += numel;
  }

  // Keep the parameters' gradients as they were.
  std::vector<std::pair<Tensor, Tensor>> saved_grads;
  for (auto& [n, t] : model.named_parameters()) saved_grads.emplace_back(t, t.grad());
  bool was_training = model.is_training();
  model.eval();

  int64_t n = images.size(0);
  Tensor G = Tensor::zeros({n, p});
  try {
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      int64_t b1 = std::min(n, b0 + block), nb = b1 - b0;
      Tensor x = images.rows(b0, b1);
      std::vector<int64_t> y(labels.begin() + b0, labels.begin() + b1);
      for (auto& w : watched) w.x = w.dy = Tensor();
      Tensor loss;
      {
        nn::ForwardObserver observer([&](const nn::Module& m, const Tensor& in, const Tensor& out) {
          auto it = index.find(&m);
          if (it == index.end()) return;
          Watched& w = watched[it->second];
          SHEARS_CHECK(!w.x.defined(), "per_sample_gradients", "'", w.path, "' is called more than once per forward");
          SHEARS_CHECK(out.grad_fn() != nullptr, "per_sample_gradients", "the output of '", w.path,
                       "' records no gradient (is its weight frozen?)");
          w.x = in.detach();
          Node& node = *out.grad_fn();
          node.backward = [inner = node.backward, &w](const Tensor& g, const std::vector<bool>& needs) {
            w.dy = g.clone();
            return inner(g, needs);
          };
        });
        loss = mul(cross_entropy(model(x), y), static_cast<float>(nb));  // the sum of the per-sample losses
      }
      model.zero_grad();
      loss.backward();
      for (Watched& w : watched) {
        SHEARS_CHECK(w.x.defined() && w.dy.defined(), "per_sample_gradients", "'", w.path,
                     "' was not reached by the forward and backward");
        Tensor mask = model.has_mask(w.name) ? model.mask(w.name) : Tensor();
        Tensor weight = model.parameter(w.name);
        for (int64_t i = 0; i < nb; ++i) {
          float* row = G.data() + (b0 + i) * p + w.column;
          if (auto* conv = dynamic_cast<const nn::Conv2d*>(w.module)) {
            const nn::Conv2dConfig& c = conv->config();
            Conv2dOptions opt{c.stride.array(), c.padding.array(), c.dilation.array(), c.groups};
            Shape xs = w.x.shape();
            xs[0] = 1;
            ConvGeometry g = conv_geometry(xs, weight.shape(), opt);
            conv2d_backward_weight(g, w.dy.rows(i, i + 1).data(), w.x.rows(i, i + 1).data(), row);
          } else {
            int64_t out = weight.size(0), in = weight.size(1);
            const float* d = w.dy.data() + i * out;
            const float* a = w.x.data() + i * in;
            for (int64_t o = 0; o < out; ++o)
              for (int64_t k = 0; k < in; ++k) row[o * in + k] = d[o] * a[k];
          }
          if (mask.defined())
            for (int64_t k = 0; k < w.numel; ++k) row[k] *= mask.data()[k];
        }
      }
    }
  } catch (...) {
    model.train(was_training);
    for (auto& [t, g] : saved_grads) t.set_grad(g);
    throw;
  }
  model.train(was_training);
  for (auto& [t, g] : saved_grads) t.set_grad(g);
  return G;
}

}  // namespace shears::prune
