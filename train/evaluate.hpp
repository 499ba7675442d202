// Evaluation of a classifier over a whole loader: mean cross-entropy, top-1/top-5 and the
// confusion matrix, in eval mode and without gradients. A diverged model scores what it is worth:
// a row of logits holding a NaN or an infinity is counted wrong, and counted.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/loader.hpp"
#include "nn/module.hpp"

namespace shears::train {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // accuracies in percent
  int64_t samples = 0;
  int64_t nonfinite = 0;  // samples whose logits hold a NaN or an infinity: counted wrong
  double seconds = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]; non-finite rows: [true][num_classes]
};

EvalResult evaluate(nn::Module& model, data::DataLoader& loader, int64_t num_classes);

// The model's logits (N, C) for every batch of `loader` in order, in eval mode and without
// gradients: the pass evaluate() makes, for callers that want the logits themselves.
void forward_batches(nn::Module& model, data::DataLoader& loader,
                     const std::function<void(const Tensor& logits, const Batch& batch)>& each);

// Top-k correct counts of one batch of logits (N, C); ties rank the lower class index first, and
// a row holding a non-finite logit is never correct.
int64_t count_topk(const Tensor& logits, const std::vector<int64_t>& labels, int64_t k);

}  // namespace shears::train
