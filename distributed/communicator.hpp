// Data-parallel training across processes (issue 12), after PyTorch's DistributedDataParallel:
// every rank holds the whole model, trains on its shard of each batch (data::LoaderOptions'
// num_shards/shard), and the gradients are averaged over the ranks before each optimizer step, so
// the ranks' parameters stay bit-identical (the sum is done once by MPI and handed to all ranks;
// the optimizers then do the same arithmetic on the same numbers).
//
//   dist::Communicator comm(distributed);      // MPI_COMM_WORLD, or a group of one without MPI
//   comm.broadcast(model->parameters());       // rank 0's initial weights everywhere
//   loss.backward();
//   comm.average_gradients(model->parameters());
//   opt->step();
//
// A group of one (distributed = false) needs no MPI: every collective leaves its arguments as they
// are, so a training loop is written once. MPI itself lives in dist/mpi.cpp (dist/backend.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.hpp"
#include "distributed/backend.hpp"

namespace shears::dist {

// Time spent by average_gradients since the last reset: wall clock inside the all-reduces and the
// bucket copies (waiting for the slowest rank included), calls, and bytes reduced per rank.
struct SyncStats {
  double seconds = 0.0;
  int64_t calls = 0, buckets = 0, bytes = 0;
};

class Communicator {
 public:
  // Gradients are reduced in buckets of at most this many floats (4 MiB), DDP's bucketing; all of
  // a ResNet-20's fit in one.
  static constexpr int64_t kBucketFloats = int64_t{1} << 20;

  // distributed: MPI_COMM_WORLD (MPI initialised here, finalised by the destructor); shears::Error
  // when the build has no MPI. Otherwise a group of one.
  explicit Communicator(bool distributed);

  int rank() const { return backend_ ? backend_->rank() : 0; }
  int size() const { return backend_ ? backend_->size() : 1; }
  bool is_root() const { return rank() == 0; }
  int local_size() const { return backend_ ? backend_->local_size() : 1; }

  // Every rank's tensors become `root`'s (same shapes on all ranks).
  void broadcast(const std::vector<Tensor>& tensors, int root = 0) const;
  // Element-wise sums over the ranks, in place.
  void sum(std::vector<double>& values) const;

  // Replaces each gradient by its mean over the ranks. The gradients are packed in reverse order
  // (the order backward produces them) into buckets of kBucketFloats, each reduced by one
  // all-reduce. Parameters without a gradient are skipped, so every rank must have gradients for
  // the same parameters (true when the graph does not depend on the data, as in the zoo).
  // `stop` rides along in the last bucket: returns true when any rank passed true, so all ranks
  // stop at the same step (e.g. on Ctrl-C) without an extra message.
  bool average_gradients(const std::vector<Tensor>& params, bool stop = false);
  const SyncStats& sync_stats() const { return stats_; }
  void reset_sync_stats() { stats_ = {}; }

  // A checksum of the tensors' bytes on every rank; throws shears::Error naming the ranks whose
  // tensors differ from rank 0's. Returns the checksum.
  uint64_t verify_identical(const std::vector<Tensor>& tensors) const;

 private:
  std::unique_ptr<Backend> backend_;
  std::vector<float> bucket_;
  SyncStats stats_;
};

// FNV-1a (64-bit) of the tensors' float bytes, in order.
uint64_t checksum(const std::vector<Tensor>& tensors);

}  // namespace shears::dist
