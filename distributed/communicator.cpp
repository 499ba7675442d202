#include "distributed/communicator.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace shears::dist {

Communicator::Communicator(bool distributed) {
  if (distributed) backend_ = mpi_world();
}

void Communicator::broadcast(const std::vector<Tensor>& tensors, int root) const {
  if (!backend_) return;
  for (const Tensor& t : tensors) backend_->broadcast(t.data(), t.numel(), root);
}

void Communicator::sum(std::vector<double>& values) const {
  if (backend_) backend_->sum(values.data(), static_cast<int64_t>(values.size()));
}

bool Communicator::average_gradients(const std::vector<Tensor>& params, bool stop) {
  if (!backend_) return stop;
  auto start = std::chrono::steady_clock::now();
  float flag = stop ? 1.0f : 0.0f;
  struct Piece {
    float* data;
    int64_t count;
  };
  std::vector<Piece> stream;  // the gradients in reverse order, then the stop flag
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (Tensor g = it->grad(); g.defined()) stream.push_back({g.data(), g.numel()});
  stream.push_back({&flag, 1});

  bucket_.resize(static_cast<size_t>(kBucketFloats));
  const float scale = 1.0f / static_cast<float>(size());
  std::vector<Piece> in_bucket;
  int64_t filled = 0;
  auto reduce_bucket = [&] {
    backend_->sum(bucket_.data(), filled);
    const float* from = bucket_.data();
    for (const Piece& p : in_bucket) {
      for (int64_t i = 0; i < p.count; ++i) p.data[i] = from[i] * scale;
      from += p.count;
    }
    stats_.buckets += 1;
    stats_.bytes += filled * static_cast<int64_t>(sizeof(float));
    in_bucket.clear();
    filled = 0;
  };
  for (const Piece& p : stream)
    for (int64_t done = 0; done < p.count;) {  // a gradient larger than a bucket spans several
      int64_t take = std::min(p.count - done, kBucketFloats - filled);
      std::memcpy(bucket_.data() + filled, p.data + done, static_cast<size_t>(take) * sizeof(float));
      in_bucket.push_back({p.data + done, take});
      filled += take;
      done += take;
      if (filled == kBucketFloats) reduce_bucket();
    }
  if (filled > 0) reduce_bucket();
  stats_.calls += 1;
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return flag > 0.0f;
}

uint64_t Communicator::verify_identical(const std::vector<Tensor>& tensors) const {
  const uint64_t mine = checksum(tensors);
  if (!backend_) return mine;
  std::vector<uint64_t> all = backend_->all_gather(mine);
  std::string differing;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  SHEARS_CHECK(differing.empty(), "dist", "the parameters of rank(s) ", differing,
               " differ from rank 0's (checksums disagree): the ranks were meant to stay bit-identical");
  return mine;
}

uint64_t checksum(const std::vector<Tensor>& tensors) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const Tensor& t : tensors) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(t.data());
    for (size_t i = 0, n = static_cast<size_t>(t.numel()) * sizeof(float); i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  }
  return h;
}

}  // namespace shears::dist
