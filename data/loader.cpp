#include "data/loader.hpp"

#include <algorithm>
#include <numeric>
#include <system_error>

#include "core/error.hpp"
#include "data/seeding.hpp"

namespace shears::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, Transform transform, LoaderOptions options)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), options_(options) {
  SHEARS_CHECK(dataset_ != nullptr, "DataLoader", "no dataset");
  SHEARS_CHECK(options_.batch_size > 0, "DataLoader", "batch_size must be positive, got ", options_.batch_size);
  SHEARS_CHECK(options_.num_workers >= 0, "DataLoader", "num_workers must be >= 0, got ", options_.num_workers);
  SHEARS_CHECK(options_.prefetch_factor > 0, "DataLoader", "prefetch_factor must be positive, got ",
               options_.prefetch_factor);
  SHEARS_CHECK(options_.num_shards > 0 && options_.shard >= 0 && options_.shard < options_.num_shards, "DataLoader",
               "shard must be in [0, num_shards), got shard ", options_.shard, " of ", options_.num_shards);
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::shard_size() const {
  const int64_t n = dataset_->size(), S = options_.num_shards;
  return options_.drop_last ? n / S : (n - options_.shard + S - 1) / S;
}

int64_t DataLoader::num_batches() const {
  const int64_t n = shard_size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(int64_t epoch) {
  SHEARS_CHECK(epoch >= 0, "DataLoader", "epoch must be >= 0, got ", epoch);
  stop_workers();
  epoch_ = epoch;
  std::vector<int64_t> order;
  if (options_.shuffle) {
    Generator gen(derive_seed(options_.seed, Stream::shuffle, static_cast<uint64_t>(epoch)));
    order = randperm(dataset_->size(), gen);
  } else {
    order.resize(static_cast<size_t>(dataset_->size()));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  order_.clear();
  for (size_t i = static_cast<size_t>(options_.shard); i < order.size(); i += static_cast<size_t>(options_.num_shards))
    order_.push_back(order[i]);
  ready_.clear();
  stop_ = false;
  next_batch_ = 0;
  next_to_build_ = 0;
  for (int w = 0; w < options_.num_workers; ++w) {
    try {
      workers_.emplace_back([this] { worker_loop(); });
    } catch (const std::system_error& e) {  // the process or the machine is out of threads
      stop_workers();
      throw Error(detail::concat("data loader: cannot start worker thread ", w + 1, " of ", options_.num_workers, " (",
                                 e.what(), "): lower --workers"));
    }
  }
}

void DataLoader::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    room_cv_.notify_all();  // under the lock, which keeps helgrind quiet at no measurable cost
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

// Claims batches in order, at most num_workers × prefetch_factor ahead of the consumer, until the
// epoch is built or stop_ is set; a worker mid-batch finishes it first (milliseconds), then exits.
void DataLoader::worker_loop() {
  const int64_t window = int64_t{options_.num_workers} * options_.prefetch_factor;
  const int64_t total = num_batches();
  std::unique_lock lock(mutex_);
  for (;;) {
    room_cv_.wait(lock, [&] { return stop_ || next_to_build_ >= total || next_to_build_ < next_batch_ + window; });
    if (stop_ || next_to_build_ >= total) return;
    const int64_t b = next_to_build_++;
    lock.unlock();
    Prepared prepared;
    try {
      prepared.batch = make_batch(b);
    } catch (...) {
      prepared.error = std::current_exception();
    }
    lock.lock();
    ready_.emplace(b, std::move(prepared));
    ready_cv_.notify_all();
  }
}

std::optional<Batch> DataLoader::next() {
  SHEARS_CHECK(epoch_ >= 0, "DataLoader", "call start_epoch(epoch) before next()");
  if (next_batch_ >= num_batches()) return std::nullopt;
  if (workers_.empty()) {
    const int64_t b = next_batch_++;
    return make_batch(b);
  }
  Prepared prepared;
  {
    std::unique_lock lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_.count(next_batch_) > 0; });
    prepared = std::move(ready_.extract(next_batch_).mapped());
    ++next_batch_;
    room_cv_.notify_all();
  }
  if (prepared.error) std::rethrow_exception(prepared.error);
  return std::move(prepared.batch);
}

Batch DataLoader::make_batch(int64_t b) const {
  const int64_t begin = b * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, static_cast<int64_t>(order_.size()) - begin);
  Batch batch;
  int64_t image_numel = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t index = order_[begin + i];
    Sample sample = dataset_->get(index);
    Generator gen = sample_generator(options_.seed, epoch_, index);
    Image image = transform_ ? transform_(std::move(sample.image), gen) : std::move(sample.image);
    if (i == 0) {
      batch.images = Tensor::empty({count, image.channels, image.height, image.width});
      image_numel = image.numel();
    }
    const Shape& s = batch.images.shape();
    SHEARS_CHECK(image.channels == s[1] && image.height == s[2] && image.width == s[3], "DataLoader", "sample ", index,
                 " is ", image.channels, "x", image.height, "x", image.width, " after the transforms but sample ",
                 batch.indices[0], " is ", s[1], "x", s[2], "x", s[3],
                 ": every sample of a batch needs one shape (add a Resize)");
    std::copy(image.pixels.begin(), image.pixels.end(), batch.images.data() + i * image_numel);
    batch.labels.push_back(sample.label);
    batch.indices.push_back(index);
  }
  return batch;
}

BatchStream::BatchStream(DataLoader& loader, std::string who) : loader_(loader), who_(std::move(who)) {
  loader_.start_epoch(epoch_);
}

Batch BatchStream::next() {
  std::optional<Batch> b = loader_.next();
  if (!b) {
    loader_.start_epoch(++epoch_);
    b = loader_.next();
    SHEARS_CHECK(b.has_value(), who_, "the loader yields no batch: ",
                 loader_.options().drop_last ? "fewer samples than one batch of " + std::to_string(loader_.options().batch_size) +
                                                   " with drop_last"
                                             : std::string("no samples"),
                 " (", loader_.dataset().size(), " in the dataset)");
  }
  return std::move(*b);
}

BatchSource endless_batches(DataLoader& loader, std::string who) {
  auto stream = std::make_shared<BatchStream>(loader, std::move(who));
  return [stream] { return stream->next(); };
}

TrainingBatches batch_factory(std::shared_ptr<const Dataset> split, Transform transform) {
  return [split, transform](const BatchRequest& r) {
    auto loader = std::make_shared<DataLoader>(
        split, transform, LoaderOptions{r.batch_size, true, r.drop_last, r.seed, r.workers, r.workers == 0 ? 1 : 2});
    auto stream = std::make_shared<BatchStream>(*loader, r.who);
    return BatchSource([loader, stream] { return stream->next(); });
  };
}

}  // namespace shears::data
