// DataLoader: batches of a Dataset as float32 NCHW tensors with int64 labels, after
// torch.utils.data.DataLoader — seeded shuffling, drop_last, and worker threads that prepare the
// next batches while the model trains. The batches of an epoch depend only on (seed, epoch): the
// order is randperm(seed, epoch), and sample i is augmented with sample_generator(seed, epoch, i),
// so neither num_workers nor thread scheduling changes a single value.
//
// Sharding (data-parallel training, torch.utils.data.DistributedSampler without padding): shard s
// of S takes positions s, s + S, s + 2S, … of the epoch's order, so the shards are disjoint and
// cover the dataset, and batch b of the S shards together is batch b of one loader with S times
// the batch size. With drop_last every shard counts floor(n / S) samples, so all ranks run the same
// number of steps.
//
//   DataLoader loader(splits.train, transform, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) train_step(batch->images, batch->labels);
//   }
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/batch.hpp"
#include "core/tensor.hpp"
#include "data/dataset.hpp"
#include "data/transforms.hpp"

namespace shears::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;
  int num_workers = 1;      // threads preparing batches; 0 prepares each batch inside next()
  int prefetch_factor = 2;  // batches prepared ahead per worker
  int64_t num_shards = 1;   // S: the loader yields only shard `shard` of every epoch
  int64_t shard = 0;
};

using shears::Batch;

class DataLoader {
 public:
  // An empty transform passes the samples through unchanged. Workers call it concurrently, so it
  // must not change shared state (none of data/transforms.hpp does). Every transformed sample of
  // a batch must have the same shape.
  DataLoader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options);
  ~DataLoader();  // stops and joins the workers, even mid-epoch
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const;  // batches per epoch of this shard, len(loader)
  int64_t shard_size() const;   // samples per epoch of this shard (floor(n / S) with drop_last)
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

  // Begins `epoch` (abandoning any unfinished one) and starts the workers on its first batches.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nullopt once it is exhausted. An error raised while
  // preparing the batch (e.g. by a transform) is rethrown here.
  std::optional<Batch> next();

 private:
  Batch make_batch(int64_t b) const;
  void worker_loop();
  void stop_workers();

  std::shared_ptr<const Dataset> dataset_;
  Transform transform_;
  LoaderOptions options_;

  // The current epoch; written only by start_epoch, while no worker runs.
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // this shard's part of the epoch's order

  // Shared with the workers, under mutex_ (next_batch_ is written only by the consumer).
  std::mutex mutex_;
  std::condition_variable ready_cv_;  // a batch was finished
  std::condition_variable room_cv_;   // the consumer took one, or stop
  bool stop_ = false;
  int64_t next_batch_ = 0;     // the next batch next() hands out
  int64_t next_to_build_ = 0;  // the next batch a worker claims, at most a window ahead of next_batch_
  struct Prepared {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  std::map<int64_t, Prepared> ready_;
  std::vector<std::thread> workers_;
};

// Batches without end: the loader's epochs one after another (0, 1, …), for solvers that draw
// a fresh batch per step rather than walk epochs. `who` names the caller in the error raised
// when an epoch yields no batch at all (a dataset smaller than one batch with drop_last).
class BatchStream {
 public:
  BatchStream(DataLoader& loader, std::string who);
  Batch next();

 private:
  DataLoader& loader_;
  std::string who_;
  int64_t epoch_ = 0;
};

// A BatchStream over `loader` as a batch source (the loader must outlive it).
BatchSource endless_batches(DataLoader& loader, std::string who);
// Batch sources over `split`: each request opens its own loader, which its source keeps alive.
TrainingBatches batch_factory(std::shared_ptr<const Dataset> split, Transform transform);

}  // namespace shears::data
