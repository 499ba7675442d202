// data/: readers on files the tests write (IDX raw and gzipped, CIFAR-10/100, PNG/JPEG/BMP
// folders), every corruption the readers must name, exact transforms, normalisation statistics,
// and the loader's determinism across worker counts.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

// Static, so this test binary's copy never meets another translation unit's.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/error.hpp"
#include "data/cifar.hpp"
#include "data/contract.hpp"
#include "data/dataset.hpp"
#include "data/idx.hpp"
#include "data/image_folder.hpp"
#include "data/loader.hpp"
#include "data/open_dataset.hpp"
#include "data/seeding.hpp"
#include "data/synthetic.hpp"
#include "data/transforms.hpp"
#include "tests/helpers.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using Catch::Contains;

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ =
        fs::temp_directory_path() / ("shears-test-data-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// Leaves this process `spare` free file descriptors for its lifetime: lowers the open-file limit
// to just above the highest descriptor open now and holds the free ones below it but `spare`.
class FewFileDescriptors {
 public:
  explicit FewFileDescriptors(int spare) {
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    int highest = 0;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd"))
      highest = std::max(highest, std::stoi(entry.path().filename().string()));
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(highest + 1);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    for (int fd; (fd = open("/dev/null", O_RDONLY)) >= 0;) held_.push_back(fd);
    for (int k = 0; k < spare && !held_.empty(); ++k) {
      close(held_.back());
      held_.pop_back();
    }
  }
  ~FewFileDescriptors() {
    for (int fd : held_) close(fd);
    setrlimit(RLIMIT_NOFILE, &saved_);
  }
  FewFileDescriptors(const FewFileDescriptors&) = delete;
  FewFileDescriptors& operator=(const FewFileDescriptors&) = delete;

 private:
  rlimit saved_{};
  std::vector<int> held_;
};

void write_file(const std::string& path, const Bytes& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// An unsigned-byte IDX file: magic 00 00 08 <ndims>, big-endian dims, then the data.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes out{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<uint8_t>(d >> shift));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes iota_bytes(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}

// Writes the four files of an IDX set of 2×3 images: `train` and `test` samples, labels i % 3; the
// test files named <prefix><test_part>-… (MNIST's t10k, EMNIST's test).
void write_idx_folder(const TempDir& dir, const std::string& prefix, int train, int test, bool gz,
                      const std::string& test_part = "t10k") {
  auto write = [&](const std::string& name, const Bytes& b) {
    if (gz)
      write_gz(dir / (prefix + name + ".gz"), b);
    else
      write_file(dir / (prefix + name), b);
  };
  for (const auto& [part, n] : {std::pair<std::string, int>{"train", train}, {test_part, test}}) {
    Bytes labels(n);
    for (int i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 3);
    write(part + "-images-idx3-ubyte", idx_bytes({uint32_t(n), 2, 3}, iota_bytes(n * 6)));
    write(part + "-labels-idx1-ubyte", idx_bytes({uint32_t(n)}, labels));
  }
}

Image make_image(int64_t c, int64_t h, int64_t w) {
  Image image(c, h, w);
  for (int64_t i = 0; i < image.numel(); ++i) image.pixels[i] = static_cast<float>(i + 1);
  return image;
}

// The rows of one plane, for readable comparisons.
std::vector<std::vector<float>> rows_of(const Image& image, int64_t c = 0) {
  std::vector<std::vector<float>> rows;
  for (int64_t y = 0; y < image.height; ++y) rows.emplace_back(&image.at(c, y, 0), &image.at(c, y, 0) + image.width);
  return rows;
}

// A CIFAR record: label bytes, then 3072 pixels whose value encodes (record id, position).
Bytes cifar_record(const Bytes& labels, uint8_t id) {
  Bytes r = labels;
  for (int k = 0; k < 3072; ++k) r.push_back(static_cast<uint8_t>(id * 7 + k));
  return r;
}

Bytes join(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct EpochResult {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int64_t>> labels, indices;
  bool operator==(const EpochResult&) const = default;
};

EpochResult run_epoch(DataLoader& loader, int64_t epoch) {
  EpochResult result;
  loader.start_epoch(epoch);
  while (auto batch = loader.next()) {
    result.images.push_back(batch->images.to_vector());
    result.labels.push_back(batch->labels);
    result.indices.push_back(batch->indices);
  }
  return result;
}

std::shared_ptr<const Dataset> synthetic_train(int64_t n, Shape shape = {3, 8, 8}, uint64_t seed = 0) {
  return make_synthetic({.train_size = n, .test_size = 0, .image_shape = shape, .num_classes = 4, .seed = seed}).train;
}

}  // namespace

TEST_CASE("IDX files read the same raw and gzipped", "[data]") {
  TempDir dir;
  const Bytes pixels = iota_bytes(3 * 2 * 3);
  const Bytes labels{2, 0, 1};
  write_file(dir / "images", idx_bytes({3, 2, 3}, pixels));
  write_file(dir / "labels", idx_bytes({3}, labels));
  write_gz(dir / "images.gz", idx_bytes({3, 2, 3}, pixels));
  write_gz(dir / "labels.gz", idx_bytes({3}, labels));

  IdxArray raw = read_idx(dir / "images", 3);
  IdxArray gz = read_idx(dir / "images.gz", 3);
  CHECK(raw.dims == std::vector<int64_t>{3, 2, 3});
  CHECK(raw.data == pixels);
  CHECK(gz.dims == raw.dims);
  CHECK(gz.data == raw.data);

  for (const char* suffix : {"", ".gz"}) {
    auto ds = load_idx(dir / ("images" + std::string(suffix)), dir / ("labels" + std::string(suffix)));
    REQUIRE(ds->size() == 3);
    CHECK(ds->image_shape() == Shape{1, 2, 3});
    CHECK(ds->classes() == std::vector<std::string>{"0", "1", "2"});
    Sample s = ds->get(1);
    CHECK(s.label == 0);
    CHECK(s.image.pixels == std::vector<float>{6, 7, 8, 9, 10, 11});
    CHECK(ds->label(0) == 2);
  }
}

TEST_CASE("an IDX folder: four files under any prefix, found by open_dataset", "[data]") {
  TempDir dir;
  write_idx_folder(dir, "kmnist-", 7, 4, true);
  TrainTest parts = load_idx_folder(dir.str());
  CHECK(parts.train->size() == 7);
  CHECK(parts.test->size() == 4);
  CHECK(parts.train->num_classes() == 3);
  CHECK(parts.test->classes() == parts.train->classes());
  CHECK(parts.test->get(3).image.pixels == std::vector<float>{18, 19, 20, 21, 22, 23});

  DatasetSplits splits = open_dataset(dir.str());
  CHECK(splits.name == "idx");
  CHECK(splits.train->size() == 7);
  // Measured on train: bytes 0..41 over 42 pixels.
  REQUIRE(splits.mean.size() == 1);
  CHECK(splits.mean[0] == Approx(20.5 / 255).epsilon(1e-6));
  CHECK(splits.std[0] == Approx(std::sqrt((42.0 * 42 - 1) / 12) / 255).epsilon(1e-6));

  SECTION("a second set in the folder is ambiguous") {
    write_idx_folder(dir, "mnist-", 2, 2, false);
    CHECK_THROWS_WITH(load_idx_folder(dir.str()), Contains("several files match") && Contains("mnist-train-images"));
  }
  SECTION("a missing file is named") {
    fs::remove(dir / "kmnist-t10k-labels-idx1-ubyte.gz");
    CHECK_THROWS_WITH(load_idx_folder(dir.str()), Contains(dir.str()) && Contains("t10k-labels-idx1-ubyte"));
  }
  SECTION("train and test image sizes must agree") {
    write_gz(dir / "kmnist-t10k-images-idx3-ubyte.gz", idx_bytes({4, 3, 2}, iota_bytes(24)));
    CHECK_THROWS_WITH(load_idx_folder(dir.str()), Contains("train images are 2x3") && Contains("3x2"));
  }
  SECTION("a folder that cannot be listed is named") {
    FewFileDescriptors none(0);
    CHECK_THROWS_WITH(load_idx_folder(dir.str()), Contains("IDX: " + dir.str() + ": cannot list " + dir.str()) &&
                                                      Contains("Too many open files"));
  }
  SECTION("test labels beyond the training classes") {
    write_gz(dir / "kmnist-t10k-labels-idx1-ubyte.gz", idx_bytes({4}, {0, 1, 5, 2}));
    CHECK_THROWS_WITH(load_idx_folder(dir.str()), Contains(dir / "kmnist-t10k-labels-idx1-ubyte.gz") &&
                                                      Contains("label 5 of record 2") && Contains("outside [0, 3)"));
  }
}

TEST_CASE("an EMNIST-style IDX folder: test files named <prefix>test-…", "[data]") {
  TempDir dir;
  write_idx_folder(dir, "emnist-balanced-", 6, 5, true, "test");
  TrainTest parts = load_idx_folder(dir.str());
  CHECK(parts.train->size() == 6);
  CHECK(parts.test->size() == 5);
  CHECK(parts.test->get(4).image.pixels == std::vector<float>{24, 25, 26, 27, 28, 29});
  CHECK(open_dataset(dir.str()).test->size() == 5);

  SECTION("a t10k- and a test- file together are ambiguous") {
    write_file(dir / "emnist-balanced-t10k-images-idx3-ubyte", idx_bytes({5, 2, 3}, iota_bytes(30)));
    CHECK_THROWS_WITH(load_idx_folder(dir.str()),
                      Contains("several files match t10k-images-idx3-ubyte[.gz] or test-images-idx3-ubyte[.gz]"));
  }
  SECTION("EMNIST Letters: labels 1..26 leave class 0 unused") {
    Bytes letters;
    for (uint8_t i = 0; i < 6; ++i) letters.push_back(i % 3 + 1);
    write_gz(dir / "emnist-balanced-train-labels-idx1-ubyte.gz", idx_bytes({6}, letters));
    TrainTest lettered = load_idx_folder(dir.str());
    CHECK(lettered.train->classes() == std::vector<std::string>{"N/A", "1", "2", "3"});
    CHECK(lettered.train->label(0) == 1);
    CHECK(lettered.test->label(0) == 0);
  }
}

TEST_CASE("IDX corruptions throw shears::Error naming the file, offset and expectation", "[data]") {
  TempDir dir;
  const std::string path = dir / "images-idx3-ubyte";
  const Bytes good = idx_bytes({3, 2, 3}, iota_bytes(18));

  SECTION("not an IDX file") {
    write_file(path, {0x89, 'P', 'N', 'G', 0, 0, 0, 0});
    CHECK_THROWS_WITH(read_idx(path, 3), Contains(path) && Contains("not an IDX file") && Contains("0x89504E47") &&
                                             Contains("expected 0x00000803"));
  }
  SECTION("wrong element type") {
    Bytes b = good;
    b[2] = 0x0D;
    write_file(path, b);
    CHECK_THROWS_WITH(read_idx(path, 3),
                      Contains("element type 0x0D (float32) at offset 2") && Contains("expected 0x08 (unsigned byte)"));
  }
  SECTION("labels where images are expected") {
    write_file(path, idx_bytes({3}, {0, 1, 2}));
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("1 dimensions at offset 3, expected 3"));
  }
  SECTION("too short for a magic number") {
    write_file(path, {0, 0});
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("holds 2 bytes"));
  }
  SECTION("truncated header") {
    write_file(path, Bytes(good.begin(), good.begin() + 10));
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("header truncated at offset 8"));
  }
  SECTION("a zero dimension") {
    write_file(path, idx_bytes({3, 0, 3}, {}));
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("dimension 1 at offset 8 is 0"));
  }
  SECTION("truncated data names the record") {
    write_file(path, Bytes(good.begin(), good.end() - 4));  // 14 of 18 bytes: record 2 is cut
    CHECK_THROWS_WITH(read_idx(path, 3), Contains(path) && Contains("truncated") && Contains("3x2x3 = 18 bytes") &&
                                             Contains("ends at offset 30") && Contains("inside record 2 of 3") &&
                                             Contains("starts at offset 28"));
  }
  SECTION("a header claiming far more than the file holds") {
    // 10^6 images of 28×28 (784 MB) promised by a 100-byte file: refused after reading what is there.
    write_file(path, idx_bytes({1000000, 28, 28}, iota_bytes(84)));
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("ends at offset 100") && Contains("inside record 0 of 1000000"));
    write_file(path, idx_bytes({65535, 65535, 65535}, {}));
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("dimension 2 at offset 12") && Contains("not a real IDX header"));
  }
  SECTION("trailing bytes") {
    Bytes b = good;
    b.push_back(7);
    write_file(path, b);
    CHECK_THROWS_WITH(read_idx(path, 3), Contains("unexpected data after offset 34"));
  }
  SECTION("a truncated gzip stream") {
    write_gz(path + ".gz", idx_bytes({200, 28, 28}, iota_bytes(200 * 784)));
    Bytes gz = read_file(path + ".gz");
    gz.resize(gz.size() / 2);
    write_file(path + ".gz", gz);
    CHECK_THROWS_WITH(read_idx(path + ".gz", 3), Contains(path + ".gz") && Contains("corrupt or truncated gzip"));
  }
  SECTION("a corrupt gzip stream") {
    write_gz(path + ".gz", good);
    Bytes gz = read_file(path + ".gz");
    gz[gz.size() - 6] ^= 0xFF;  // inside the CRC-32 of the trailer
    write_file(path + ".gz", gz);
    CHECK_THROWS_WITH(read_idx(path + ".gz", 3), Contains("corrupt or truncated gzip"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(read_idx(dir / "nope", 3), Contains(dir / "nope") && Contains("no such file"));
  }
  SECTION("image and label counts disagree") {
    write_file(path, good);
    write_file(dir / "labels", idx_bytes({4}, {0, 1, 2, 0}));
    CHECK_THROWS_WITH(load_idx(path, dir / "labels"), Contains(path) && Contains("holds 3 images") &&
                                                          Contains(dir / "labels") && Contains("holds 4 labels"));
  }
  SECTION("a corrupt label byte does not invent classes") {
    write_file(path, good);
    write_file(dir / "labels", idx_bytes({3}, {0, 1, 0xFF}));
    CHECK_THROWS_WITH(load_idx(path, dir / "labels"), Contains(dir / "labels") &&
                                                          Contains("label 255 of record 2 (offset 10)") &&
                                                          Contains("never occur (2..254)") && Contains("expected"));
    write_file(dir / "labels", idx_bytes({3}, {0, 2, 2}));
    CHECK_THROWS_WITH(load_idx(path, dir / "labels"),
                      Contains("label 2 of record 1 (offset 9)") && Contains("never occur (1)"));
  }
  SECTION("a label outside the classes") {
    write_file(path, good);
    write_file(dir / "labels", idx_bytes({3}, {0, 12, 2}));
    CHECK_THROWS_WITH(
        load_idx(path, dir / "labels", fashion_mnist_classes()),
        Contains(dir / "labels") && Contains("label 12 of record 1 (offset 9)") && Contains("outside [0, 10)"));
  }
}

TEST_CASE("a missing Fashion-MNIST says what to install and where it looked", "[data]") {
  TempDir dir;
  CHECK_THROWS_WITH(load_fashion_mnist(dir.str()), Contains("not found: searched " + dir.str()) &&
                                                       Contains("make deps") && Contains("dataset-fashion-mnist") &&
                                                       Contains("train-images-idx3-ubyte[.gz]"));
  OpenOptions options;
  options.dir = dir / "absent";
  CHECK_THROWS_WITH(open_dataset("fashion-mnist", options), Contains("make deps") && Contains(options.dir));
}

TEST_CASE("Fashion-MNIST from the Debian package: counts and statistics", "[data]") {
  if (!has_idx_files(kFashionMnistDir)) {
    WARN("Fashion-MNIST is not installed in " << kFashionMnistDir << " (run `make deps`): test skipped");
    return;
  }
  OpenOptions options;
  options.val_fraction = 0.1;
  options.seed = 3;
  DatasetSplits splits = open_dataset("fashion-mnist", options);
  CHECK(splits.name == "fashion-mnist");
  CHECK(splits.train->size() == 54000);
  CHECK(splits.val->size() == 6000);
  REQUIRE(splits.test != nullptr);
  CHECK(splits.test->size() == 10000);
  CHECK(splits.train->image_shape() == Shape{1, 28, 28});
  CHECK(splits.train->classes() == fashion_mnist_classes());
  CHECK(splits.mean == std::vector<float>{0.2860f});
  CHECK(splits.std == std::vector<float>{0.3530f});

  // The published statistics, measured on the full training set; classes are balanced.
  TrainTest parts = load_fashion_mnist();
  REQUIRE(parts.train->size() == 60000);
  ChannelStats stats = channel_stats(*parts.train);
  CHECK(stats.mean[0] == Approx(0.2860).margin(5e-4));
  CHECK(stats.std[0] == Approx(0.3530).margin(5e-4));
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < parts.test->size(); ++i) ++counts[parts.test->label(i)];
  CHECK(counts == std::vector<int64_t>(10, 1000));
}

TEST_CASE("CIFAR-10 binary batches", "[data]") {
  TempDir dir;
  const std::string folder = dir / "cifar-10-batches-bin";
  for (int b = 1; b <= 5; ++b)
    write_file(folder + "/data_batch_" + std::to_string(b) + ".bin",
               join({cifar_record({uint8_t(b)}, uint8_t(2 * b)), cifar_record({9}, uint8_t(2 * b + 1))}));
  write_file(folder + "/test_batch.bin",
             join({cifar_record({3}, 100), cifar_record({0}, 101), cifar_record({7}, 102)}));

  TrainTest parts = load_cifar10(dir.str());  // the folder the archive unpacked in
  REQUIRE(parts.train->size() == 10);
  REQUIRE(parts.test->size() == 3);
  CHECK(parts.train->image_shape() == Shape{3, 32, 32});
  CHECK(parts.train->classes() == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 10; ++i) labels.push_back(parts.train->label(i));
  CHECK(labels == std::vector<int64_t>{1, 9, 2, 9, 3, 9, 4, 9, 5, 9});
  // Pixels stay in the file's (C, H, W) order: R plane, then G, then B.
  Sample s = parts.test->get(2);
  CHECK(s.label == 7);
  CHECK(s.image.at(0, 0, 0) == uint8_t(102 * 7));
  CHECK(s.image.at(1, 0, 5) == uint8_t(102 * 7 + 1024 + 5));
  CHECK(s.image.at(2, 31, 31) == uint8_t(102 * 7 + 3071));

  // Class names from batches.meta.txt, and format detection from the directory alone.
  std::ofstream(folder + "/batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  DatasetSplits splits = open_dataset(folder);
  CHECK(splits.name == "cifar10");
  CHECK(splits.train->classes()[9] == "truck");
  CHECK(splits.mean.size() == 3);

  SECTION("a wrong number of class names") {
    std::ofstream(folder + "/batches.meta.txt") << "airplane\nautomobile\n";
    CHECK_THROWS_WITH(load_cifar10(folder),
                      Contains("batches.meta.txt") && Contains("expected 10 class names, one a line, got 2"));
  }
  SECTION("a missing test batch") {
    fs::remove(folder + "/test_batch.bin");
    CHECK_THROWS_WITH(load_cifar10(folder), Contains("test_batch.bin") && Contains("no such file"));
  }
}

TEST_CASE("CIFAR-100 binary files with coarse and fine labels", "[data]") {
  TempDir dir;
  write_file(dir / "train.bin", join({cifar_record({19, 99}, 1), cifar_record({0, 5}, 2)}));
  write_file(dir / "test.bin", cifar_record({4, 42}, 3));
  TrainTest fine = load_cifar100(dir.str());
  TrainTest coarse = load_cifar100(dir.str(), Cifar100Labels::coarse);
  CHECK(fine.train->num_classes() == 100);
  CHECK(coarse.train->num_classes() == 20);
  CHECK(fine.train->label(0) == 99);
  CHECK(coarse.train->label(0) == 19);
  CHECK(fine.test->label(0) == 42);
  CHECK(coarse.test->label(0) == 4);
  CHECK(fine.train->get(1).image.at(0, 0, 1) == 15);  // id 2: 2·7 + 1
  CHECK(open_dataset(dir.str()).name == "cifar100");
}

TEST_CASE("CIFAR corruptions throw shears::Error naming the record and offset", "[data]") {
  TempDir dir;
  SECTION("a truncated record") {
    write_file(dir / "train.bin", join({cifar_record({1, 1}, 0), Bytes(100, 0)}));
    write_file(dir / "test.bin", cifar_record({1, 1}, 0));
    CHECK_THROWS_WITH(
        load_cifar100(dir.str()),
        Contains(dir / "train.bin") && Contains("truncated: record 1 at offset 3074 has 100 of its 3074 bytes"));
  }
  SECTION("CIFAR-10 label out of range") {
    for (int b = 1; b <= 5; ++b)
      write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"),
                 join({cifar_record({1}, 0), cifar_record({b == 3 ? uint8_t(10) : uint8_t(0)}, 1)}));
    write_file(dir / "test_batch.bin", cifar_record({1}, 0));
    CHECK_THROWS_WITH(load_cifar10(dir.str()),
                      Contains(dir / "data_batch_3.bin") &&
                          Contains("record 1 at offset 3073: label 10 at offset 3073, expected 0..9"));
  }
  SECTION("CIFAR-100 fine and coarse labels out of range") {
    write_file(dir / "test.bin", cifar_record({1, 1}, 0));
    write_file(dir / "train.bin", cifar_record({3, 100}, 0));
    CHECK_THROWS_WITH(load_cifar100(dir.str()), Contains("fine label 100 at offset 1, expected 0..99"));
    write_file(dir / "train.bin", cifar_record({20, 1}, 0));
    CHECK_THROWS_WITH(load_cifar100(dir.str(), Cifar100Labels::fine),
                      Contains("coarse label 20 at offset 0, expected 0..19"));
  }
  SECTION("an empty file") {
    write_file(dir / "train.bin", {});
    write_file(dir / "test.bin", cifar_record({1, 1}, 0));
    CHECK_THROWS_WITH(load_cifar100(dir.str()), Contains("the file is empty"));
  }
  SECTION("no files at all") {
    CHECK_THROWS_WITH(load_cifar10(dir.str()),
                      Contains("data_batch_1.bin not found in " + dir.str()) && Contains("cifar-10-batches-bin"));
  }
}

TEST_CASE("image folders of PNG, JPEG and BMP files", "[data]") {
  TempDir dir;
  // cat: a 4×4 RGB PNG with distinct pixels, and a BMP in a nested folder; dog: a flat-colour JPEG.
  std::vector<uint8_t> png(4 * 4 * 3);
  for (size_t i = 0; i < png.size(); ++i) png[i] = static_cast<uint8_t>(i * 5);
  fs::create_directories(dir / "root/cat/more");
  fs::create_directories(dir / "root/dog");
  REQUIRE(stbi_write_png((dir / "root/cat/b.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
  REQUIRE(stbi_write_bmp((dir / "root/cat/more/a.bmp").c_str(), 4, 4, 3, png.data()));
  std::vector<uint8_t> flat(8 * 8 * 3);
  for (size_t i = 0; i < flat.size(); i += 3) {
    flat[i] = 200;
    flat[i + 1] = 100;
    flat[i + 2] = 50;
  }
  REQUIRE(stbi_write_jpg((dir / "root/dog/x.JPG").c_str(), 8, 8, 3, flat.data(), 100));
  std::ofstream(dir / "root/dog/notes.txt") << "not an image";

  auto ds = load_image_folder(dir / "root", {.channels = 3});
  REQUIRE(ds->size() == 3);
  CHECK(ds->skipped() == 1);  // notes.txt
  CHECK(ds->image_shape() == Shape{3, 0, 0});
  CHECK(ds->classes() == std::vector<std::string>{"cat", "dog"});
  CHECK(ds->label(0) == 0);
  CHECK(ds->label(2) == 1);
  // Sorted by folder then name: root/cat/b.png comes before root/cat/more/a.bmp.
  for (int64_t i : {0, 1}) {
    Image image = ds->get(i).image;
    CHECK(image.at(0, 0, 0) == png[0]);
    CHECK(image.at(1, 2, 3) == png[(2 * 4 + 3) * 3 + 1]);
    CHECK(image.at(2, 3, 1) == png[(3 * 4 + 1) * 3 + 2]);
  }
  // The 8×8 JPEG at its own size, and through the evaluation view at 4×4: a flat colour stays
  // flat (JPEG rounding aside).
  Image dog = ds->get(2).image;
  CHECK(dog.height == 8);
  Generator gen(0);
  Image small = ResizeCenterCrop{4, 4, 1.0}(dog, gen);
  REQUIRE(small.height == 4);
  REQUIRE(small.width == 4);
  for (const Image* image : {&dog, &small})
    for (int64_t y = 0; y < image->height; ++y)
      for (int64_t x = 0; x < image->width; ++x) {
        CHECK(std::abs(image->at(0, y, x) - 200) <= 3);
        CHECK(std::abs(image->at(1, y, x) - 100) <= 3);
        CHECK(std::abs(image->at(2, y, x) - 50) <= 3);
      }

  SECTION("grayscale") {
    auto gray = load_image_folder(dir / "root", {.channels = 1});
    CHECK(gray->image_shape() == Shape{1, 0, 0});
    CHECK(std::abs(gray->get(2).image.at(0, 1, 1) - (0.299 * 200 + 0.587 * 100 + 0.114 * 50)) <= 3);
  }
  SECTION("decoded images are cached up to the bound, and read the same from disk or cache") {
    const int64_t one = 4 * 4 * 3 * sizeof(float);
    for (int64_t bound : {int64_t{0}, one, 100 * one}) {
      auto cached = load_image_folder(dir / "root", {.channels = 3, .cache_bytes = bound});
      for (int round = 0; round < 2; ++round)
        for (int64_t i = 0; i < cached->size(); ++i) {
          CHECK(cached->get(i).image.pixels == ds->get(i).image.pixels);
          CHECK(cached->cached_bytes() <= bound);
        }
    }
  }
  SECTION("train/ and val/ folders through open_dataset") {
    fs::create_directories(dir / "set");
    fs::rename(dir / "root", dir / "set/train");
    fs::create_directories(dir / "set/val/cat");
    REQUIRE(stbi_write_png((dir / "set/val/cat/c.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    OpenOptions options;
    options.stats_view = {4, 4};
    DatasetSplits splits = open_dataset(dir / "set", options);
    CHECK(splits.name == "image-folder");
    CHECK(splits.train->size() == 3);
    CHECK(splits.test->size() == 1);
    CHECK(splits.mean.size() == 3);
  }
  SECTION("validation/ and test/ are splits too; --val-split names one") {
    fs::create_directories(dir / "set");
    fs::rename(dir / "root", dir / "set/train");
    for (const char* split : {"validation/cat", "test/cat", "test/dog", "holdout/dog"})
      fs::create_directories(dir / (std::string("set/") + split));
    REQUIRE(stbi_write_png((dir / "set/validation/cat/c.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    REQUIRE(stbi_write_png((dir / "set/test/cat/c.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    REQUIRE(stbi_write_png((dir / "set/test/dog/d.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    REQUIRE(stbi_write_png((dir / "set/holdout/dog/d.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    OpenOptions options;
    CHECK(open_dataset(dir / "set", options).test->size() == 1);  // validation/ before test/
    options.test_split = "test";
    CHECK(open_dataset(dir / "set", options).test->size() == 2);
    options.test_split = "holdout";
    CHECK(open_dataset(dir / "set", options).test->label(0) == 1);
    options.test_split = "nowhere";
    CHECK_THROWS_WITH(open_dataset(dir / "set", options), Contains("no split folder 'nowhere'"));
  }
  SECTION("a train/-only folder tests on the part --val-fraction holds out") {
    fs::create_directories(dir / "set");
    fs::rename(dir / "root", dir / "set/train");
    OpenOptions options;
    CHECK(open_dataset(dir / "set", options).test == nullptr);
    options.val_fraction = 1.0 / 3.0;
    DatasetSplits splits = open_dataset(dir / "set", options);
    CHECK(splits.train->size() == 2);
    REQUIRE(splits.test != nullptr);
    CHECK(splits.test == splits.val);
    CHECK(splits.test->size() == 1);
  }
  SECTION("a folder without train/ opens for evaluation only when the classes are given") {
    CHECK_THROWS_WITH(open_dataset(dir / "root", {}), Contains("no dataset recognised"));
    fs::create_directories(dir / "set");
    fs::rename(dir / "root", dir / "set/test");
    CHECK_THROWS_WITH(open_dataset(dir / "set", {}), Contains("a folder to evaluate alone needs a checkpoint"));
    OpenOptions options;
    options.classes = {"ant", "cat", "dog"};
    DatasetSplits splits = open_dataset(dir / "set", options);
    CHECK(splits.train == nullptr);
    CHECK(splits.mean.empty());
    CHECK(splits.test->size() == 3);
    CHECK(splits.test->label(0) == 1);
    CHECK(splits.test->classes() == options.classes);
  }
  SECTION("a val/ folder missing a class keeps train's labels; an unknown class is an error") {
    fs::create_directories(dir / "set");
    fs::rename(dir / "root", dir / "set/train");
    fs::create_directories(dir / "set/val/dog");
    REQUIRE(stbi_write_png((dir / "set/val/dog/d.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    OpenOptions options;
    DatasetSplits splits = open_dataset(dir / "set", options);
    REQUIRE(splits.test->size() == 1);
    CHECK(splits.test->label(0) == 1);
    CHECK(splits.test->classes() == std::vector<std::string>{"cat", "dog"});

    fs::create_directories(dir / "set/val/bird");
    REQUIRE(stbi_write_png((dir / "set/val/bird/b.png").c_str(), 4, 4, 3, png.data(), 4 * 3));
    CHECK_THROWS_WITH(open_dataset(dir / "set", options),
                      Contains(dir / "set/val/bird") &&
                          Contains("class 'bird' is not one of the 2 classes the labels follow ('cat', 'dog')"));
  }
}

TEST_CASE("image folder errors name the folder or file", "[data]") {
  TempDir dir;
  fs::create_directories(dir / "root/a");
  fs::create_directories(dir / "root/b");
  std::vector<uint8_t> pixels(2 * 2 * 3, 9);
  REQUIRE(stbi_write_png((dir / "root/a/1.png").c_str(), 2, 2, 3, pixels.data(), 2 * 3));
  SECTION("an empty class folder") {
    std::ofstream(dir / "root/b/readme.md") << "#";
    CHECK_THROWS_WITH(load_image_folder(dir / "root"),
                      Contains(dir / "root/b") && Contains("class 'b' has no images") && Contains(".png"));
  }
  SECTION("an unreadable image") {
    write_file(dir / "root/b/broken.png", {'n', 'o', 't', ' ', 'a', ' ', 'p', 'n', 'g'});
    CHECK_THROWS_WITH(load_image_folder(dir / "root"), Contains(dir / "root/b/broken.png") && Contains("stb_image"));
  }
  SECTION("a truncated PNG") {
    Bytes png = read_file(dir / "root/a/1.png");
    png.resize(png.size() - 20);
    write_file(dir / "root/b/cut.png", png);
    CHECK_THROWS_WITH(load_image_folder(dir / "root"),
                      Contains(dir / "root/b/cut.png") && Contains("corrupt PNG: the chunk at offset") &&
                          Contains("the file has"));
  }
  SECTION("a TIFF or WebP file torchvision would read is refused, not skipped") {
    for (const char* name : {"c.webp", "d.TIFF"}) {
      const std::string path = dir / (std::string("root/b/") + name);
      write_file(path, {'R', 'I', 'F', 'F'});
      CHECK_THROWS_WITH(load_image_folder(dir / "root"),
                        Contains(path) && Contains("cannot be decoded") && Contains(".png .jpg"));
      fs::remove(path);
    }
  }
  SECTION("a directory walk that fails is a shears::Error naming the dataset") {
    // The walk holds one descriptor at a time, however deep the tree: with none spare it fails (EMFILE).
    std::string nested = dir / "root/a";
    for (int k = 0; k < 30; ++k) nested += "/n";
    fs::create_directories(nested);
    FewFileDescriptors few(0);
    CHECK_THROWS_WITH(load_image_folder(dir / "root"), Contains("image folder: " + dir / "root") &&
                                                           Contains("cannot list " + dir / "root") &&
                                                           Contains("Too many open files"));
  }
  SECTION("no class folders, no directory, bad options") {
    CHECK_THROWS_WITH(load_image_folder(dir / "root/a"), Contains("no class folders"));
    CHECK_THROWS_WITH(load_image_folder(dir / "nowhere"), Contains("no such directory"));
    CHECK_THROWS_WITH(load_image_folder(dir / "root", {.channels = 2}), Contains("channels must be 1 or 3"));
  }
}

TEST_CASE("the synthetic dataset depends only on (seed, index)", "[data]") {
  SyntheticOptions options{.train_size = 12, .test_size = 4, .image_shape = {1, 5, 5}, .num_classes = 3, .seed = 9};
  TrainTest a = make_synthetic(options), b = make_synthetic(options);
  options.seed = 10;
  TrainTest c = make_synthetic(options);
  CHECK(a.train->size() == 12);
  CHECK(a.test->size() == 4);
  CHECK(a.test->image_shape() == Shape{1, 5, 5});
  for (int64_t i = 0; i < 12; ++i) {
    CHECK(a.train->label(i) == i % 3);
    CHECK(a.train->get(i).image.pixels == b.train->get(i).image.pixels);
    CHECK(a.train->get(i).image.pixels != c.train->get(i).image.pixels);
  }
  CHECK(a.test->label(0) == 12 % 3);
  CHECK(a.test->get(0).image.pixels != a.train->get(0).image.pixels);
  // A longer train part starts with the same samples.
  SyntheticOptions longer{.train_size = 20, .test_size = 0, .image_shape = {1, 5, 5}, .num_classes = 3, .seed = 9};
  CHECK(make_synthetic(longer).train->get(13).image.pixels == a.test->get(1).image.pixels);
  CHECK_THROWS_AS(make_synthetic({.train_size = 0}), Error);
}

TEST_CASE("pad, crop and flip are exact", "[data]") {
  const Image image = make_image(1, 2, 3);  // rows {1 2 3} {4 5 6}
  using Rows = std::vector<std::vector<float>>;
  CHECK(rows_of(pad(image, 1, PadMode::constant, -1.f)) ==
        Rows{{-1, -1, -1, -1, -1}, {-1, 1, 2, 3, -1}, {-1, 4, 5, 6, -1}, {-1, -1, -1, -1, -1}});
  CHECK(rows_of(pad(image, {2, 0}, PadMode::edge)) == Rows{{1, 1, 1, 2, 3, 3, 3}, {4, 4, 4, 5, 6, 6, 6}});
  CHECK(rows_of(pad(image, {2, 1, 1, 0}, PadMode::reflect)) ==
        Rows{{6, 5, 4, 5, 6, 5}, {3, 2, 1, 2, 3, 2}, {6, 5, 4, 5, 6, 5}});
  CHECK_THROWS_WITH(pad(image, {3, 0}, PadMode::reflect), Contains("smaller than the image"));
  CHECK_THROWS_AS(pad(image, -1), Error);

  CHECK(rows_of(crop(image, 1, 1, 1, 2)) == Rows{{5, 6}});
  CHECK_THROWS_WITH(crop(image, 1, 2, 1, 2), Contains("does not fit"));
  const Image two = make_image(2, 2, 3);
  CHECK(rows_of(hflip(two), 1) == Rows{{9, 8, 7}, {12, 11, 10}});
  CHECK(hflip(hflip(two)).pixels == two.pixels);

  // RandomCrop = crop(pad(x)) at the position its two draws pick; all positions occur.
  const RandomCrop random_crop(2, 1);
  const Image padded = pad(image, 1);
  std::set<std::pair<int64_t, int64_t>> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Generator gen(seed), twin(seed);
    Image out = random_crop(image, gen);
    const int64_t top = twin.randint(3), left = twin.randint(4);
    REQUIRE(out.pixels == crop(padded, top, left, 2, 2).pixels);
    seen.emplace(top, left);
  }
  CHECK(seen.size() == 12);
  Generator gen(0);
  CHECK_THROWS_WITH(RandomCrop(3)(image, gen), Contains("larger than the (padded) image"));

  int flips = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    Generator g(seed);
    Image out = RandomHorizontalFlip{}(image, g);
    REQUIRE((out.pixels == image.pixels || out.pixels == hflip(image).pixels));
    flips += out.pixels != image.pixels;
  }
  CHECK(flips > 150);
  CHECK(flips < 250);
  CHECK(RandomHorizontalFlip{0.f}(image, gen).pixels == image.pixels);
  CHECK(RandomHorizontalFlip{1.f}(image, gen).pixels == hflip(image).pixels);
}

TEST_CASE("resize is PIL's antialiased bilinear; to_channels repeats or takes luma", "[data]") {
  Image ramp(1, 1, 2);
  ramp.pixels = {0, 1};
  // Growing: interpolate(mode="bilinear", align_corners=False) samples at (i + 0.5)/2 − 0.5.
  CHECK(resize(ramp, 1, 4).pixels == std::vector<float>{0, 0.25f, 0.75f, 1});
  // Shrinking 4 → 2: the triangle filter widens to ±2 pixels and is cut at the border, so output 0
  // (centre 1.0) weighs inputs 0, 1, 2 by 3/4, 3/4, 1/4 and output 1 (centre 3.0) inputs 1, 2, 3
  // by 1/4, 3/4, 3/4, each renormalised by 7/4.
  Image wide(1, 1, 4);
  wide.pixels = {0, 1, 2, 3};
  std::vector<float> shrunk = resize(wide, 1, 2).pixels;
  CHECK(shrunk[0] == Approx(1.25 / 1.75));
  CHECK(shrunk[1] == Approx(4.0 / 1.75));
  const Image image = make_image(3, 5, 7);
  CHECK(resize(image, 5, 7).pixels == image.pixels);
  Image flat(2, 6, 9, 42.f);
  for (float v : resize(flat, 4, 13).pixels) CHECK(v == Approx(42.f));
  CHECK(resize(flat, 4, 13).channels == 2);
  Generator gen(0);
  CHECK(Resize{3, 2}(image, gen).pixels.size() == 3 * 3 * 2);

  const Image gray = make_image(1, 2, 2);
  const Image rgb = to_channels(gray, 3);
  CHECK(rgb.channels == 3);
  for (int64_t c = 0; c < 3; ++c) CHECK(rows_of(rgb, c) == rows_of(gray));
  Image color(3, 1, 1);
  color.pixels = {100, 50, 200};
  CHECK(to_channels(color, 1).pixels[0] == Approx(0.299 * 100 + 0.587 * 50 + 0.114 * 200));
  CHECK_THROWS_AS(ToChannels{2}(color, gen), Error);
}

TEST_CASE("ToFloat and Normalize with a dataset's statistics give zero mean and unit std", "[data]") {
  auto ds = synthetic_train(64, {3, 6, 6});
  ChannelStats stats = channel_stats(*ds);
  REQUIRE(stats.mean.size() == 3);
  Compose pipeline{{ToFloat{}, Normalize{{float(stats.mean[0]), float(stats.mean[1]), float(stats.mean[2])},
                                         {float(stats.std[0]), float(stats.std[1]), float(stats.std[2])}}}};
  std::vector<double> sum(3), sum_sq(3);
  Generator gen(0);
  for (int64_t i = 0; i < ds->size(); ++i) {
    Image out = pipeline(ds->get(i).image, gen);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t k = 0; k < 36; ++k) {
        double v = out.pixels[c * 36 + k];
        sum[c] += v;
        sum_sq[c] += v * v;
      }
  }
  const double n = 64.0 * 36;
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(sum[c] / n == Approx(0).margin(1e-5));
    CHECK(std::sqrt(sum_sq[c] / n - (sum[c] / n) * (sum[c] / n)) == Approx(1).epsilon(1e-5));
  }

  // Exact arithmetic on known values; one mean/std value serves every channel.
  Image pixel(2, 1, 1);
  pixel.pixels = {51, 255};
  Image out = Compose{{ToFloat{}, Normalize{{0.5f}, {0.25f}}}}(pixel, gen);
  CHECK(out.pixels[0] == Approx((0.2 - 0.5) / 0.25));
  CHECK(out.pixels[1] == Approx(2.0));
  CHECK_THROWS_WITH(Normalize({{0.1f, 0.2f}, {1.f, 1.f}})(make_image(3, 1, 1), gen), Contains("mean has 2 values"));
  CHECK_THROWS_WITH(Normalize({{0.1f}, {0.f}})(make_image(1, 1, 1), gen), Contains("must be positive"));

  // channel_stats on a known two-valued dataset: bytes 0 and 255 in equal numbers.
  InMemoryDataset halves({1, 1, 2}, {0, 255, 255, 0}, {0, 0}, {"only"});
  ChannelStats h = channel_stats(halves);
  CHECK(h.mean[0] == Approx(0.5));
  CHECK(h.std[0] == Approx(0.5));
}

TEST_CASE("random_split: disjoint, complete, reproducible", "[data]") {
  auto ds = synthetic_train(50);
  auto a = random_split(ds, {40, 10}, 7);
  auto b = random_split(ds, {40, 10}, 7);
  auto c = random_split(ds, {40, 10}, 8);
  REQUIRE(a.size() == 2);
  const auto& a0 = dynamic_cast<const Subset&>(*a[0]).indices();
  const auto& a1 = dynamic_cast<const Subset&>(*a[1]).indices();
  CHECK(a0.size() == 40);
  CHECK(a1.size() == 10);
  std::set<int64_t> all(a0.begin(), a0.end());
  all.insert(a1.begin(), a1.end());
  CHECK(all.size() == 50);
  CHECK(a0 == dynamic_cast<const Subset&>(*b[0]).indices());
  CHECK(a0 != dynamic_cast<const Subset&>(*c[0]).indices());
  CHECK(a[1]->get(3).image.pixels == ds->get(a1[3]).image.pixels);
  CHECK(a[1]->label(3) == ds->label(a1[3]));
  CHECK_THROWS_WITH(random_split(ds, {40, 9}, 7), Contains("sum to 49") && Contains("50 samples"));
}

TEST_CASE("loader: batch shapes, order, shuffling and drop_last", "[data][loader]") {
  auto ds = synthetic_train(10, {2, 3, 3});
  DataLoader plain(ds, {}, {.batch_size = 4, .num_workers = 0});
  CHECK(plain.num_batches() == 3);
  EpochResult r = run_epoch(plain, 0);
  REQUIRE(r.indices.size() == 3);
  CHECK(r.indices[0] == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(r.indices[2] == std::vector<int64_t>{8, 9});
  CHECK(r.labels[2] == std::vector<int64_t>{ds->label(8), ds->label(9)});
  CHECK(r.images[2].size() == 2 * 18);
  std::vector<float> expected = ds->get(9).image.pixels;
  CHECK(std::vector<float>(r.images[2].begin() + 18, r.images[2].end()) == expected);

  DataLoader dropping(ds, {}, {.batch_size = 4, .drop_last = true, .num_workers = 2});
  CHECK(dropping.num_batches() == 2);
  dropping.start_epoch(0);
  auto first = dropping.next();
  REQUIRE(first);
  CHECK(first->images.shape() == Shape{4, 2, 3, 3});
  CHECK(dropping.next());
  CHECK_FALSE(dropping.next());
  CHECK_FALSE(dropping.next());

  DataLoader shuffled(ds, {}, {.batch_size = 3, .shuffle = true, .seed = 5, .num_workers = 1});
  EpochResult e0 = run_epoch(shuffled, 0), e1 = run_epoch(shuffled, 1), again = run_epoch(shuffled, 0);
  std::vector<int64_t> order;
  for (const auto& idx : e0.indices) order.insert(order.end(), idx.begin(), idx.end());
  CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 10);
  CHECK(e0 == again);
  CHECK(e0.indices != e1.indices);
  CHECK(e0.indices != r.indices);
}

TEST_CASE("loader results depend only on the seed, not on workers or prefetch", "[data][loader]") {
  auto ds = synthetic_train(100, {3, 8, 8});
  Compose augment{{RandomCrop(8, 2, PadMode::reflect), RandomHorizontalFlip{}, ToFloat{}, Normalize{{0.5f}, {0.25f}}}};
  auto epochs_with = [&](int workers, int prefetch, uint64_t seed) {
    DataLoader loader(
        ds, augment,
        {.batch_size = 16, .shuffle = true, .seed = seed, .num_workers = workers, .prefetch_factor = prefetch});
    return std::pair{run_epoch(loader, 0), run_epoch(loader, 1)};
  };
  const auto reference = epochs_with(0, 1, 11);
  CHECK(epochs_with(1, 1, 11) == reference);
  CHECK(epochs_with(2, 1, 11) == reference);
  CHECK(epochs_with(2, 4, 11) == reference);
  CHECK(epochs_with(0, 1, 12) != reference);
  CHECK(reference.first.images != reference.second.images);

  // Each sample is the transform of get(i) under sample_generator(seed, epoch, i).
  const EpochResult& e1 = reference.second;
  const int64_t index = e1.indices[2][5];
  Generator gen = sample_generator(11, 1, index);
  Image expected = augment(ds->get(index).image, gen);
  std::vector<float> got(e1.images[2].begin() + 5 * 192, e1.images[2].begin() + 6 * 192);
  CHECK(got == expected.pixels);
}

TEST_CASE("loader stops cleanly mid-epoch and restarts epochs", "[data][loader]") {
  auto ds = synthetic_train(256, {3, 16, 16});
  // A slow transform keeps both workers busy when the loader goes away.
  Transform slow = [](Image image, Generator&) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return image;
  };
  const LoaderOptions options{.batch_size = 8, .shuffle = true, .seed = 1, .num_workers = 2, .prefetch_factor = 2};
  const auto t0 = std::chrono::steady_clock::now();
  {
    DataLoader loader(ds, slow, options);
    loader.start_epoch(0);
    REQUIRE(loader.next());
  }
  {
    DataLoader never_read(ds, slow, options);
    never_read.start_epoch(0);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));

  DataLoader loader(ds, {}, options);
  const EpochResult fresh = run_epoch(loader, 3);
  loader.start_epoch(2);
  REQUIRE(loader.next());
  REQUIRE(loader.next());
  CHECK(run_epoch(loader, 3) == fresh);  // abandoning epoch 2 halfway leaves nothing behind
}

TEST_CASE("loader errors reach the caller", "[data][loader]") {
  auto ds = synthetic_train(12, {1, 4, 4});
  DataLoader unstarted(ds, {}, {.batch_size = 4});
  CHECK_THROWS_WITH(unstarted.next(), Contains("start_epoch"));
  CHECK_THROWS_AS(DataLoader(ds, {}, {.batch_size = 0}), Error);
  CHECK_THROWS_AS(DataLoader(nullptr, {}, {}), Error);

  // Image i is filled with the value i; the transform widens image 3 only.
  Bytes pixels;
  for (uint8_t i = 0; i < 12; ++i) pixels.insert(pixels.end(), 16, i);
  auto numbered = std::make_shared<InMemoryDataset>(Shape{1, 4, 4}, pixels, std::vector<int64_t>(12, 0),
                                                    std::vector<std::string>{"x"});
  Transform widen_three = [](Image image, Generator&) { return image.pixels[0] == 3.f ? resize(image, 4, 5) : image; };
  for (int workers : {0, 2}) {
    DataLoader loader(numbered, widen_three, {.batch_size = 12, .num_workers = workers});
    loader.start_epoch(0);
    CHECK_THROWS_WITH(loader.next(), Contains("sample 3 is 1x4x5 after the transforms but sample 0 is 1x4x4") &&
                                         Contains("needs one shape"));
    CHECK_FALSE(loader.next());

    Transform throwing = [](Image, Generator&) -> Image { throw Error("test: broken transform"); };
    DataLoader broken(ds, throwing, {.batch_size = 5, .num_workers = workers});
    broken.start_epoch(0);
    CHECK_THROWS_WITH(broken.next(), Contains("broken transform"));
    CHECK_THROWS_WITH(broken.next(), Contains("broken transform"));
  }
}

TEST_CASE("open_dataset: names, directories and the standard transforms", "[data]") {
  OpenOptions options;
  options.synthetic = {.train_size = 40, .test_size = 8, .image_shape = {1, 6, 6}, .num_classes = 4, .seed = 2};
  options.val_fraction = 0.25;
  options.seed = 4;
  DatasetSplits splits = open_dataset("synthetic", options);
  CHECK(splits.train->size() == 30);
  CHECK(splits.val->size() == 10);
  CHECK(splits.test->size() == 8);
  ChannelStats stats = channel_stats(*splits.train);
  CHECK(splits.mean[0] == Approx(stats.mean[0]));

  Generator gen(0);
  Image rgb = standard_transforms(splits, true, true)(splits.train->get(0).image, gen);
  CHECK(rgb.channels == 3);
  CHECK(rgb.pixels[0] == Approx((splits.train->get(0).image.pixels[0] / 255.f - splits.mean[0]) / splits.std[0]));
  CHECK(standard_transforms(splits, true).transforms.size() == 2);

  DatasetSplits cifar_like = splits;
  cifar_like.name = "cifar10";
  CHECK(standard_transforms(cifar_like, true).transforms.size() == 4);
  CHECK(standard_transforms(cifar_like, false).transforms.size() == 2);

  CHECK_THROWS_WITH(open_dataset("imagenet"), Contains("unknown dataset 'imagenet'") && Contains("fashion-mnist"));
  CHECK_THROWS_WITH(open_dataset("cifar10"), Contains("--data-dir"));
  TempDir empty;
  CHECK_THROWS_WITH(open_dataset(empty.str()), Contains("no dataset recognised"));
  options.val_fraction = 0.999;
  CHECK_THROWS_WITH(open_dataset("synthetic", options), Contains("both parts must be non-empty"));
}

}  // namespace shears::data

namespace shears::data {

TEST_CASE("readers refuse a FIFO or a device at once instead of blocking or reading forever", "[data]") {
  TempDir dir;
  REQUIRE(::mkfifo((dir / "images").c_str(), 0600) == 0);  // no writer: a blocking open never returns
  CHECK_THROWS_WITH(read_idx(dir / "images", 3), Contains(dir / "images") && Contains("got a FIFO"));
  CHECK_THROWS_WITH(read_idx("/dev/zero", 3), Contains("/dev/zero") && Contains("got a character device"));
  fs::create_directories(dir / "cifar");
  REQUIRE(::mkfifo((dir / "cifar/test_batch.bin").c_str(), 0600) == 0);
  for (int k = 1; k <= 5; ++k) write_file(dir / ("cifar/data_batch_" + std::to_string(k) + ".bin"), Bytes(3073, 0));
  CHECK_THROWS_WITH(load_cifar10(dir / "cifar"), Contains("test_batch.bin") && Contains("got a FIFO"));
}

TEST_CASE("gzip: concatenated members are read, bytes after the last member are refused", "[data]") {
  TempDir dir;
  const Bytes pixels = iota_bytes(4 * 2 * 3), whole = idx_bytes({4, 2, 3}, pixels);
  // Two members, split inside the data, as `cat a.gz b.gz` makes: one stream of bytes.
  write_gz(dir / "a.gz", Bytes(whole.begin(), whole.begin() + 13));
  write_gz(dir / "b.gz", Bytes(whole.begin() + 13, whole.end()));
  Bytes joined = read_file(dir / "a.gz"), second = read_file(dir / "b.gz");
  joined.insert(joined.end(), second.begin(), second.end());
  write_file(dir / "images.gz", joined);
  CHECK(read_idx(dir / "images.gz", 3).data == pixels);

  // What follows the last member must be another member: garbage, zeros or half a header are refused,
  // as trailing bytes after a raw file are.
  for (const Bytes& tail : {Bytes{'x', 'y', 'z'}, Bytes(16, 0), Bytes{0x1f}}) {
    Bytes bad = read_file(dir / "images.gz");
    bad.insert(bad.end(), tail.begin(), tail.end());
    write_file(dir / "bad.gz", bad);
    CHECK_THROWS_WITH(read_idx(dir / "bad.gz", 3),
                      Contains(dir / "bad.gz") && Contains("unexpected data after the last gzip member"));
  }
  Bytes raw = whole;
  raw.push_back('x');
  write_file(dir / "raw", raw);
  CHECK_THROWS_WITH(read_idx(dir / "raw", 3), Contains("unexpected data after offset"));
}

TEST_CASE("image folders: a symlink cycle or a file reached twice is refused naming the link", "[data]") {
  TempDir dir;
  fs::create_directories(dir / "root/cat");
  fs::create_directories(dir / "root/dog");
  fs::create_directories(dir / "outside/more");
  std::vector<uint8_t> pixels(2 * 2 * 3, 9);
  for (const char* name : {"root/cat/1.png", "root/dog/2.png", "outside/more/3.png"})
    REQUIRE(stbi_write_png((dir / name).c_str(), 2, 2, 3, pixels.data(), 2 * 3));
  auto load = [&] { return load_image_folder(dir / "root", {.channels = 3}); };
  REQUIRE(load()->size() == 2);

  SECTION("a link to a folder outside the tree is followed, as torchvision does") {
    fs::create_directory_symlink(dir / "outside", dir / "root/cat/extra");
    CHECK(load()->size() == 3);
  }
  SECTION("a link to the class folder itself (.) is a cycle") {
    fs::create_directory_symlink(".", dir / "root/cat/self");
    CHECK_THROWS_WITH(load(), Contains(dir / "root/cat/self") && Contains("symlink cycle"));
  }
  SECTION("two links to . (which would multiply without end) are refused as fast") {
    fs::create_directory_symlink(".", dir / "root/cat/x");
    fs::create_directory_symlink(".", dir / "root/cat/y");
    CHECK_THROWS_WITH(load(), Contains("symlink cycle"));
  }
  SECTION("a link to .. reaches the root and the other classes") {
    fs::create_directory_symlink("..", dir / "root/cat/up");
    CHECK_THROWS_WITH(load(), Contains(dir / "root/cat/up") && Contains("same folder"));
  }
  SECTION("a link to another class's folder would label its images twice") {
    fs::create_directory_symlink("../dog", dir / "root/cat/dogs");
    CHECK_THROWS_WITH(load(), Contains(dir / "root/cat/dogs") && Contains("same folder"));
  }
  SECTION("a file linked into a second class (hard or symbolic) is read once at most") {
    fs::create_hard_link(dir / "root/dog/2.png", dir / "root/cat/2.png");
    CHECK_THROWS_WITH(load(),
                      Contains(dir / "root/cat/2.png") && Contains(dir / "root/dog/2.png") && Contains("same file"));
    fs::remove(dir / "root/cat/2.png");
    fs::create_symlink(dir / "root/cat/1.png", dir / "root/cat/again.png");
    CHECK_THROWS_WITH(load(), Contains("again.png") && Contains("same file"));
  }
}

}  // namespace shears::data

namespace shears::data {
namespace {

using Catch::Contains;

TEST_CASE("the input contract survives checkpoint metadata, and malformed keys are named", "[data][contract]") {
  InputContract c{.dataset = "image-folder",
                  .channels = 3,
                  .height = 64,
                  .width = 64,
                  .mean = {0.5f, 0.25f, 0.125f},
                  .std = {0.2f, 0.3f, 0.4f},
                  .classes = {"a, b", "quote\"d", "ü"},
                  .resize = EvalResize::resize_crop,
                  .crop_pct = 0.9,
                  .interpolation = Interpolation::bicubic};
  const auto meta = contract_metadata(c);
  const std::optional<InputContract> back = contract_from_metadata(meta, "f.safetensors");
  REQUIRE(back);
  CHECK(back->dataset == c.dataset);
  CHECK(back->channels == 3);
  CHECK(back->height == 64);
  CHECK(back->mean == c.mean);
  CHECK(back->std == c.std);
  CHECK(back->classes == c.classes);
  CHECK(back->resize == EvalResize::resize_crop);
  CHECK(back->crop_pct == 0.9);
  CHECK(back->interpolation == Interpolation::bicubic);
  CHECK_FALSE(contract_from_metadata({{"arch", "mlpnet"}}, "f"));  // weights without a contract

  const std::pair<std::string, std::string> broken[] = {{"input.mean", "0.5,0.25"},        {"input.std", "0.2,0,0.4"},
                                                        {"input.classes", "[1,2]"},        {"input.shape", "2,8,8"},
                                                        {"input.transform", "zoom"},       {"input.crop_pct", "1.5"},
                                                        {"input.interpolation", "lanczos"}};
  for (const auto& [key, value] : broken) {
    auto bad = meta;
    bad[key] = value;
    INFO(key);
    CHECK_THROWS_WITH(contract_from_metadata(bad, "f.safetensors"),
                      Contains("f.safetensors") && Contains(key) && Contains(value));
  }
  auto missing = meta;
  missing.erase("input.classes");
  CHECK_THROWS_WITH(contract_from_metadata(missing, "f"), Contains("'input.classes' is missing"));
}

TEST_CASE("the evaluation view resizes the shorter side, then crops the centre, as timm does", "[data][transforms]") {
  Image ramp(1, 60, 90);
  for (int64_t y = 0; y < 60; ++y)
    for (int64_t x = 0; x < 90; ++x) ramp.at(0, y, x) = static_cast<float>(x);
  Generator gen(0);
  // 32 / 0.8 = 40: the 60x90 image becomes 40x60, the centre 32x32 starts at (4, 14).
  const Image view = ResizeCenterCrop{32, 32, 0.8}(ramp, gen);
  REQUIRE(view.height == 32);
  REQUIRE(view.width == 32);
  const Image resized = resize(ramp, 40, 60);
  for (int64_t x = 0; x < 32; ++x)
    CHECK(view.at(0, 5, x) == std::clamp(std::nearbyint(resized.at(0, 9, x + 14)), 0.f, 255.f));
  // A tall image the same way round.
  Image tall(1, 90, 60, 7.f);
  const Image tall_view = ResizeCenterCrop{32, 32, 1.0}(tall, gen);
  CHECK(tall_view.height == 32);
  for (float v : tall_view.pixels) CHECK(v == 7.f);
}

TEST_CASE("bicubic resizing keeps constants and reproduces ramps inside the image", "[data][transforms]") {
  Image ramp(1, 8, 16);
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 16; ++x) ramp.at(0, y, x) = 3.f * static_cast<float>(x) + 1.f;
  // Growing 16 -> 32: output x samples input (x + 0.5) / 2 - 0.5; away from the borders a cubic
  // kernel whose weights sum to one reproduces a linear function exactly.
  const Image grown = resize(ramp, 8, 32, Interpolation::bicubic);
  for (int64_t x = 4; x < 28; ++x) CHECK(grown.at(0, 3, x) == Approx(3.0 * ((x + 0.5) / 2 - 0.5) + 1).margin(1e-4));
  Image flat(3, 17, 23, 42.f);
  for (auto mode : {Interpolation::bilinear, Interpolation::bicubic})
    for (auto [h, w] : {std::pair{5, 7}, std::pair{40, 11}})
      for (float v : resize(flat, h, w, mode).pixels) CHECK(v == Approx(42.f).margin(1e-4));
  CHECK_THROWS_WITH(parse_interpolation("lanczos", "--interpolation"), Contains("expected bilinear or bicubic"));
}

TEST_CASE("RandomResizedCrop: the output size always, a window inside the image, one draw per seed",
          "[data][transforms]") {
  Image image(3, 50, 80);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<float>(i % 251);
  const RandomResizedCrop crop{.height = 24, .width = 24};
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Generator a(seed), b(seed);
    const Image x = crop(image, a), y = crop(image, b);
    REQUIRE(x.height == 24);
    REQUIRE(x.width == 24);
    CHECK(x.pixels == y.pixels);
    for (float v : x.pixels) CHECK((v >= 0.f && v <= 255.f && v == std::nearbyint(v)));
  }
  // No window of the allowed ratios fits a 1x200 strip: the fallback takes the centre.
  Image strip(1, 1, 200, 9.f);
  Generator gen(1);
  const Image fallback = crop(strip, gen);
  CHECK(fallback.height == 24);
  for (float v : fallback.pixels) CHECK(v == 9.f);
}

}  // namespace
}  // namespace shears::data

namespace shears::data {
namespace {

TEST_CASE("the evaluation view of an extreme aspect ratio resizes only the crop: same values, bounded memory",
          "[data][transforms]") {
  Image wide(3, 5, 300);
  for (size_t i = 0; i < wide.pixels.size(); ++i) wide.pixels[i] = static_cast<float>((i * 37) % 256);
  Generator gen(0);
  // 5x300 -> 36x2160 (the shorter side to floor(32 / 0.875)), then the centre 32x32.
  const Image view = ResizeCenterCrop{32, 32}(wide, gen);
  const Image whole = resize_levels(wide, 36, 2160);
  const Image cropped = center_crop(whole, 32, 32);
  CHECK(view.pixels == cropped.pixels);
  // A 1 x 20000 strip would be 256 x 5,120,000 resized whole (15.7 GB of floats): only the crop is computed.
  Image strip(1, 1, 20000, 50.f);
  const Image small = ResizeCenterCrop{.height = 224, .width = 224}(strip, gen);
  CHECK(small.height == 224);
  for (float v : small.pixels) CHECK(v == 50.f);
}

TEST_CASE("a contract that cannot be read is refused whole, and images of the wrong size are named",
          "[data][contract]") {
  InputContract c{.dataset = "fashion-mnist",
                  .channels = 1,
                  .height = 32,
                  .width = 32,
                  .mean = {0.286f},
                  .std = {0.353f},
                  .classes = {"a", "b"},
                  .resize = EvalResize::pad,
                  .pad = 2};
  auto meta = contract_metadata(c);
  meta["input.shape"] = "1,1e30,1e30";
  CHECK_THROWS_WITH(contract_from_metadata(meta, "f"), Contains("'input.shape': expected C,H,W as whole numbers"));
  meta = contract_metadata(c);
  meta.erase("input.shape");  // other input.* keys: a contract with a key missing, not none
  CHECK_THROWS_WITH(contract_from_metadata(meta, "f"), Contains("'input.shape' is missing"));
  meta = contract_metadata(c);
  meta["input.pad"] = "16";
  CHECK_THROWS_WITH(contract_from_metadata(meta, "f"), Contains("'input.pad'"));
  Generator gen(0);
  const Compose view = eval_transform(c);
  CHECK(view(Image(1, 28, 28), gen).height == 32);
  CHECK_THROWS_WITH(view(Image(1, 30, 30), gen),
                    Contains("an image of 30x30 pixels: the checkpoint takes fashion-mnist's 28x28 images as stored"));
}

}  // namespace
}  // namespace shears::data
