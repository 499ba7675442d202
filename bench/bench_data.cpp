// The data loader's throughput with augmentation, on synthetic data shaped like Fashion-MNIST
// (1×28×28) and CIFAR (3×32×32), batch 128, for 0, 1 and 2 worker threads. One iteration is one
// batch; an epoch restarts when one runs out. Counters: images/s, and GB/s of float32 batches
// written. ResNet-20 training needs ~0.25 GFLOP per CIFAR image (3 × 2 × 41 M MACs), so even at
// this machine's ~350 GFLOP/s peak it consumes under 1,500 images/s: the loader must stay above
// ten times that.
#include <benchmark/benchmark.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "data/idx.hpp"
#include "data/image_folder.hpp"
#include "data/loader.hpp"
#include "data/synthetic.hpp"
#include "data/transforms.hpp"

namespace shears::data {
namespace {

constexpr int64_t kBatch = 128;

void run_loader(benchmark::State& state, std::shared_ptr<const Dataset> dataset, int64_t image_numel,
                const Compose& augment) {
  DataLoader loader(dataset, augment,
                    {.batch_size = kBatch,
                     .shuffle = true,
                     .drop_last = true,
                     .seed = 1,
                     .num_workers = static_cast<int>(state.range(0))});
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  for (auto _ : state) {
    std::optional<Batch> batch = loader.next();
    if (!batch) {
      loader.start_epoch(++epoch);
      batch = loader.next();
    }
    benchmark::DoNotOptimize(batch->images.data());
  }
  state.counters["images/s"] = benchmark::Counter(kBatch, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] =
      benchmark::Counter(1e-9 * kBatch * image_numel * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}

void run_loader(benchmark::State& state, const Shape& shape, const Compose& augment) {
  run_loader(state, make_synthetic({.train_size = 10000, .test_size = 0, .image_shape = shape, .seed = 1}).train,
             numel(shape), augment);
}

// Fashion-MNIST with a light augmentation: crop with 2 pixels of padding, flip, normalise.
void BM_loader_fashion_mnist(benchmark::State& state) {
  run_loader(state, {1, 28, 28},
             Compose{{RandomCrop(28, 2), RandomHorizontalFlip{}, ToFloat{}, Normalize{{0.2860f}, {0.3530f}}}});
}
BENCHMARK(BM_loader_fashion_mnist)->ArgName("workers")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

// CIFAR's standard training augmentation.
void BM_loader_cifar(benchmark::State& state) {
  run_loader(state, {3, 32, 32},
             Compose{{RandomCrop(32, 4), RandomHorizontalFlip{}, ToFloat{},
                      Normalize{{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}}});
}
BENCHMARK(BM_loader_cifar)->ArgName("workers")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

// Photos as people have them: 512 JPEGs of 256x320 to 320x400 pixels (smooth gradients and
// noise, quality 90) in two class folders, decoded from disk on every read (no cache), then
// RandomResizedCrop to 224x224, flip, normalise: ImageNet-style training input. Compare images/s
// with what a training step consumes: `shears bench --model resnet18 --variant imagenet
// --input-size 224 --batch-size 32` (images/s of the step).
std::shared_ptr<const Dataset> photo_folder() {
  const auto root = std::filesystem::temp_directory_path() / "shears-bench-photos";
  if (!std::filesystem::exists(root / "done")) {
    std::mt19937 rng(1);
    for (int k = 0; k < 512; ++k) {
      const int w = 320 + static_cast<int>(rng() % 81), h = 256 + static_cast<int>(rng() % 65);
      std::vector<uint8_t> pixels(static_cast<size_t>(w * h * 3));
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c)
            pixels[(y * w + x) * 3 + c] = static_cast<uint8_t>((x * (c + 1) + y * (3 - c) + rng() % 24) % 256);
      const auto folder = root / (k % 2 ? "a" : "b");
      std::filesystem::create_directories(folder);
      stbi_write_jpg((folder / (std::to_string(k) + ".jpg")).c_str(), w, h, 3, pixels.data(), 90);
    }
    std::ofstream(root / "done") << "";
  }
  return load_image_folder(root.string(), {.channels = 3, .cache_bytes = 0});
}

void BM_loader_photos_224(benchmark::State& state) {
  static const std::shared_ptr<const Dataset> photos = photo_folder();
  run_loader(state, photos, 3 * 224 * 224,
             Compose{{RandomResizedCrop{.height = 224, .width = 224}, RandomHorizontalFlip{}, ToFloat{},
                      Normalize{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}}});
}
BENCHMARK(BM_loader_photos_224)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Start-up cost: reading Fashion-MNIST's four gzipped IDX files (MB/s of decoded bytes).
void BM_read_fashion_mnist(benchmark::State& state) {
  if (!has_idx_files(kFashionMnistDir)) {
    state.SkipWithError("Fashion-MNIST is not installed (make deps)");
    return;
  }
  int64_t bytes = 0;
  for (auto _ : state) {
    TrainTest parts = load_fashion_mnist();
    bytes = (parts.train->size() + parts.test->size()) * (28 * 28 + 1);
  }
  state.counters["MB/s"] =
      benchmark::Counter(1e-6 * static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_read_fashion_mnist)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace shears::data
