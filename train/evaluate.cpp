#include "train/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"

namespace shears::train {

namespace {

bool finite_row(const float* row, int64_t C) {
  for (int64_t c = 0; c < C; ++c)
    if (!std::isfinite(row[c])) return false;
  return true;
}

}  // namespace

int64_t count_topk(const Tensor& logits, const std::vector<int64_t>& labels, int64_t k) {
  int64_t N = logits.size(0), C = logits.size(1), correct = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = logits.data() + n * C;
    if (!finite_row(row, C)) continue;  // a NaN compares false with everything: it would rank the target first
    float target = row[labels[n]];
    // Classes ranked before the target: higher scores, and equal ones of lower index (the argmax
    // convention), so that a collapsed network with constant logits is not counted as always right.
    int64_t above = 0;
    for (int64_t c = 0; c < C; ++c) above += row[c] > target || (row[c] == target && c < labels[n]);
    correct += above < k;
  }
  return correct;
}

void forward_batches(nn::Module& model, data::DataLoader& loader,
                     const std::function<void(const Tensor& logits, const Batch& batch)>& each) {
  NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  loader.start_epoch(0);
  while (auto batch = loader.next()) each(model(batch->images), *batch);
  model.train(was_training);
}

EvalResult evaluate(nn::Module& model, data::DataLoader& loader, int64_t num_classes) {
  EvalResult r;
  r.confusion.assign(num_classes, std::vector<int64_t>(num_classes + 1, 0));
  auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  forward_batches(model, loader, [&](const Tensor& logits, const Batch& batch) {
    int64_t n = logits.size(0);
    loss_sum += cross_entropy(logits, batch.labels).item() * n;
    top1 += count_topk(logits, batch.labels, 1);
    top5 += count_topk(logits, batch.labels, std::min<int64_t>(5, num_classes));
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.data() + i * logits.size(1);
      if (!finite_row(row, logits.size(1))) {
        ++r.nonfinite;
        r.confusion[batch.labels[i]][num_classes]++;
        continue;
      }
      int64_t best = std::max_element(row, row + logits.size(1)) - row;
      r.confusion[batch.labels[i]][best]++;
    }
    r.samples += n;
  });
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SHEARS_CHECK(r.samples > 0, "evaluate", "the evaluation set is empty");
  r.loss = loss_sum / r.samples;
  r.top1 = 100.0 * top1 / r.samples;
  r.top5 = 100.0 * top5 / r.samples;
  return r;
}

}  // namespace shears::train
