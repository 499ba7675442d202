// Inputs that crashed or hung a file reader (found by the fuzz harnesses in tests/fuzz/, or by
// reading the code they exercise), and files that claim more memory than they hold or than a cap
// allows: each must now be refused with one shears::Error, before anything large is allocated.
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/cifar.hpp"
#include "data/idx.hpp"
#include "data/image_folder.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

// The minimal inputs the harnesses found, committed.
const fs::path kRegressions = fs::path(SHEARS_FIXTURES) / ".." / "fuzz" / "regressions";

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("shears-test-fuzz-" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  REQUIRE(fs::file_size(path) == bytes.size());
}

// An unsigned-byte IDX file: magic 00 00 08 <ndims>, big-endian dims, then `data`.
std::string idx_file(const std::vector<uint32_t>& dims, const std::string& data) {
  std::string bytes{0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(d >> shift));
  return bytes + data;
}

// A one-image image folder holding `bytes` as root/class/<name>; returns root.
std::string image_folder(const TempDir& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir.path() / "root" / "class");
  write_bytes(dir.path() / "root" / "class" / name, bytes);
  return (dir.path() / "root").string();
}

// A one-image image folder holding the committed regression input `regression` as
// root/class/<name>; returns root.
std::string regression_folder(const TempDir& dir, const std::string& regression, const std::string& name) {
  fs::create_directories(dir.path() / "root" / "class");
  fs::copy_file(kRegressions / regression, dir.path() / "root" / "class" / name);
  return (dir.path() / "root").string();
}

// A safetensors file of `header` and no data.
std::string safetensors_file(const std::string& header) {
  std::string bytes(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(bytes.data(), &size, sizeof size);
  return bytes + header;
}

// nlohmann-json parses any depth without recursing, but printing a value for an error message
// recursed once per level: a million nested arrays overflowed the stack.
TEST_CASE("fuzz regression: a deeply nested safetensors header is refused", "[fuzz][safetensors]") {
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  for (const std::string& header : {"{\"w\": " + deep + "}", "{\"__metadata__\": {\"k\": " + deep + "}}"}) {
    const std::string file = safetensors_file(header);
    CHECK_THROWS_AS(safetensors::parse(file, "deep.safetensors"), Error);
    CHECK_THROWS_WITH(safetensors::parse(file, "deep.safetensors"), Catch::Contains("nested"));
  }
}

// Debian's stb_image builds a JPEG Huffman table without checking that its code counts sum to at
// most 256 and wrote past the table (UBSan: index 257 out of bounds for type 'stbi_uc[257]'):
// the image harness found this 9-byte file (SOI, a DHT whose first two counts are 0xD9).
TEST_CASE("fuzz regression: a JPEG Huffman table of more than 256 codes is refused", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-jpeg-dht-434-codes.jpg", "x.jpg");
  CHECK_THROWS_AS(data::load_image_folder(root), Error);
  CHECK_THROWS_WITH(data::load_image_folder(root), Catch::Contains("Huffman table at offset 6 has 434 codes"));
}

// Found by the 120-second runs: stb_image reads fill bytes (0xFF) before SOI too, so a JPEG that
// starts FF FF D8 passed the check above unseen (the same UBSan report; minimised to 10 bytes).
TEST_CASE("fuzz regression: a Huffman table after fill bytes before SOI is checked too", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-jpeg-fill-byte-before-soi.jpg", "x.jpg");
  CHECK_THROWS_WITH(data::load_image_folder(root),
                    Catch::Contains("x.jpg: corrupt JPEG: a Huffman table at offset 7 has 510 codes, at most 256"));
}

// Found by the 10-minute run: stb_image copied an empty first IDAT chunk into a null pointer
// (UBSan: null pointer passed as argument 1 of memcpy, in stbi__getn).
TEST_CASE("fuzz regression: a PNG whose first IDAT chunk is empty is refused", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-png-empty-first-idat.png", "x.png");
  CHECK_THROWS_WITH(data::load_image_folder(root),
                    Catch::Contains("x.png: corrupt PNG: the first IDAT chunk, at offset 33, is empty"));
}

// Found by the next 10-minute run: stb_image grew its buffer to 2 GB for an IDAT chunk that
// claims more bytes than the 89-byte file has (libFuzzer: out-of-memory in stbi__parse_png_file).
TEST_CASE("fuzz regression: a PNG chunk longer than the file is refused before decoding", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-png-chunk-longer-than-file.png", "x.png");
  CHECK_THROWS_WITH(data::load_image_folder(root),
                    Catch::Contains("x.png: corrupt PNG: the chunk at offset 77 claims"));
}

// The same stb_image converted a 16-bit PNM's channels with its 8-bit routine, then read twice
// the pixels it had (ASan: heap-buffer-overflow in stbi__convert_16_to_8): a grayscale PGM whose
// maxval (2554) makes it 16-bit, loaded as RGB. Loaded as grayscale it needs no conversion. The
// file the harness found is also short (22 of the 44 bytes its header needs), which is refused
// first now; completed, it still meets the conversion guard.
TEST_CASE("fuzz regression: a 16-bit PNM is not converted to other channels", "[fuzz][data]") {
  TempDir dir;
  std::ifstream in(kRegressions / "image-pgm-16bit-as-rgb.pgm", std::ios::binary);
  const std::string found((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(found.size() == 22);
  const std::string root = image_folder(dir, "x.pgm", found);
  CHECK_THROWS_WITH(data::load_image_folder(root, {.channels = 1}),
                    Catch::Contains("x.pgm: a PNM image of 4x4 pixels needs at least 44 bytes, the file has 22"));
  write_bytes(dir.path() / "root" / "class" / "x.pgm", found + std::string(22, '\x01'));
  CHECK_THROWS_AS(data::load_image_folder(root, {.channels = 3}), Error);
  CHECK_THROWS_WITH(data::load_image_folder(root, {.channels = 3}),
                    Catch::Contains("16-bit PNM image of 1 channel(s) cannot be converted to 3"));
  CHECK(data::load_image_folder(root, {.channels = 1})->size() == 1);
}

// The image harness's slowest input: a 102-byte run-length TGA whose header claims 815×12610
// 32-bit pixels. stb_image reads past the end as zeros, so it decoded all ten million (18 s under
// the fuzz build's sanitizers, 0.3 s without); packets of at most 128 pixels need 401,455 bytes.
TEST_CASE("fuzz regression: a TGA claiming more pixels than its bytes can hold is refused", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-tga-rle-815x12610.tga", "x.tga");
  CHECK_THROWS_WITH(data::load_image_folder(root),
                    Catch::Contains("x.tga: a TGA image of 815x12610 pixels needs at least 401455 bytes, the file "
                                    "has 102: truncated or corrupt"));
}

// Found by the 120-second runs: stb_image read this PGM's 29-digit width into an int (UBSan:
// signed integer overflow: 499999999 * 10 cannot be represented in type 'int').
TEST_CASE("fuzz regression: a PNM header whose numbers overflow an int is refused", "[fuzz][data]") {
  TempDir dir;
  const std::string root = regression_folder(dir, "image-pgm-width-overflows-int.pgm", "x.pgm");
  CHECK_THROWS_WITH(data::load_image_folder(root),
                    Catch::Contains("x.pgm: corrupt PNM header: the width at offset 3 is more than 16777216"));
  // The largest numbers stb_image allows still pass, to the next checks.
  fs::remove_all(dir.path() / "root");
  const std::string largest = image_folder(dir, "y.pgm", "P5 16777216 # a comment\n1 65535\n");
  CHECK_THROWS_WITH(data::load_image_folder(largest),
                    Catch::Contains("y.pgm: a PNM image of 16777216x1 pixels needs at least 33554464 bytes"));
}

TEST_CASE("image folders refuse images above max_pixels, and short PNM files, before decoding", "[fuzz][data]") {
  TempDir dir;
  const std::string header = "P5\n40 30\n255\n";  // 13 bytes, then 40×30 samples
  const std::string root = image_folder(dir, "big.pgm", header + std::string(40 * 30, '\x7f'));
  CHECK_THROWS_WITH(data::load_image_folder(root, {.channels = 1, .max_pixels = 1199}),
                    Catch::Contains("big.pgm: 40x30 = 1200 pixels, more than the 1199 allowed "
                                    "(ImageFolderOptions::max_pixels, --max-image-pixels)"));
  CHECK(data::load_image_folder(root, {.channels = 1, .max_pixels = 1200})->size() == 1);

  // stb_image reads the samples a PNM lacks as nothing: they stayed uninitialised.
  fs::remove_all(dir.path() / "root");
  const std::string short_root = image_folder(dir, "short.pgm", header + std::string(40 * 30 - 1, '\x7f'));
  CHECK_THROWS_WITH(data::load_image_folder(short_root, {.channels = 1}),
                    Catch::Contains("short.pgm: a PNM image of 40x30 pixels needs at least 1213 bytes, the file has "
                                    "1212: truncated or corrupt"));
}

TEST_CASE("IDX headers claiming more than max_bytes or than a gzip file can inflate to are refused", "[fuzz][data]") {
  TempDir dir;
  const fs::path raw = dir.path() / "images-idx3-ubyte", gz = dir.path() / "images-idx3-ubyte.gz";
  write_bytes(raw, idx_file({2, 3, 3}, std::string(18, '\x01')));
  CHECK(data::read_idx(raw.string(), 3, 18).data.size() == 18);
  CHECK_THROWS_WITH(data::read_idx(raw.string(), 3, 17),
                    Catch::Contains("the header's 2x3x3 = 18 bytes are more than the 17 allowed (max_bytes"));

  // A million 28×28 images (784 MB) promised by a gzip file of about 100 bytes: refused before
  // anything is inflated, let alone allocated.
  const std::string claim = idx_file({1000000, 28, 28}, std::string(84, '\x02'));
  gzFile out = gzopen(gz.c_str(), "wb");
  REQUIRE(out != nullptr);
  REQUIRE(gzwrite(out, claim.data(), static_cast<unsigned>(claim.size())) == static_cast<int>(claim.size()));
  REQUIRE(gzclose(out) == Z_OK);
  const int64_t size = static_cast<int64_t>(fs::file_size(gz));
  CHECK_THROWS_WITH(data::read_idx(gz.string(), 3),
                    Catch::Contains("the header promises 1000000x28x28 = 784000000 bytes, but a gzip file of " +
                                    std::to_string(size) + " bytes inflates to at most " +
                                    std::to_string(1032 * size)));
}

TEST_CASE("CIFAR parts larger than max_bytes are refused at the record that passes it", "[fuzz][data]") {
  TempDir dir;
  const std::string record = std::string(1, '\x03') + std::string(3072, '\x10');
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                           "data_batch_5.bin", "test_batch.bin"})
    write_bytes(dir.path() / name, record);
  CHECK(data::load_cifar10(dir.path().string(), 5 * 3072).train->size() == 5);
  CHECK_THROWS_WITH(data::load_cifar10(dir.path().string(), 2 * 3072),
                    Catch::Contains("data_batch_3.bin: record 0 at offset 0 would take the pixels read past the 6144 "
                                    "bytes allowed"));
}

TEST_CASE("safetensors files larger than Limits::max_bytes in memory are refused before decoding",
          "[fuzz][safetensors]") {
  TempDir dir;
  const std::string path = (dir.path() / "u8.safetensors").string();
  // 1000 U8 elements: 1000 bytes on disk, 4000 as float32 in memory.
  safetensors::save(path, {{"w", Tensor::ones({10, 100}), safetensors::Dtype::U8}});
  const uint64_t size = fs::file_size(path);
  CHECK(safetensors::load(path, {.max_bytes = size + 4000}).tensors.size() == 1);
  CHECK_THROWS_WITH(safetensors::load(path, {.max_bytes = size + 3999}),
                    Catch::Contains(path + ": tensors: expected at most " + std::to_string(size + 3999) + " bytes") &&
                        Catch::Contains("got " + std::to_string(size + 4000) + " bytes"));
  CHECK_THROWS_WITH(safetensors::load(path, {.max_bytes = size - 1}),
                    Catch::Contains(path + ": file size: expected at most " + std::to_string(size - 1) + " bytes") &&
                        Catch::Contains("got " + std::to_string(size) + " bytes"));
}

// load_model builds what a checkpoint's metadata and shapes describe: absurd ones must not
// allocate gigabytes (each case below would have asked for 4 GB or more).
TEST_CASE("load_model refuses metadata and shapes that describe a model far larger than the file",
          "[fuzz][models]") {
  TempDir dir;
  const std::string path = (dir.path() / "model.safetensors").string();
  auto rewrite = [&](const std::string& arch, const std::map<std::string, std::string>& meta,
                     const std::string& replaced = "", Tensor replacement = {}) {
    nn::ModelOptions options;
    options.widths = arch == "mlp" ? std::vector<int64_t>{8} : std::vector<int64_t>{};
    nn::make_model(arch, options)->save_checkpoint(path);
    safetensors::File file = safetensors::load(path);
    for (const auto& [key, value] : meta) file.metadata[key] = value;
    for (auto& entry : file.tensors)
      if (entry.name == replaced) entry.value = replacement;
    safetensors::save(path, file.tensors, file.metadata);
  };
  rewrite("mlp", {});
  REQUIRE_NOTHROW(nn::load_model(path));

  rewrite("mlp", {{"num_classes", "1000000000"}});
  CHECK_THROWS_WITH(nn::load_model(path), Catch::Contains(path + ": mlp: the model that in_channels 3, num_classes "
                                                                 "1000000000, input_size 32 and the tensors' shapes") &&
                                              Catch::Contains("its options and shapes do not fit together"));
  rewrite("resnet20", {{"in_channels", "200000000"}});
  CHECK_THROWS_WITH(nn::load_model(path), Catch::Contains("do not fit together"));
  // A hidden width read from a weight with no elements: [10^9, 0] costs the file nothing.
  rewrite("mlp", {}, "fc1.weight", Tensor::empty({1000000000, 0}));
  CHECK_THROWS_WITH(nn::load_model(path), Catch::Contains("do not fit together"));
  rewrite("mlp", {{"dropout", "nan"}});
  CHECK_THROWS_WITH(nn::load_model(path), Catch::Contains("'dropout' should be a finite number, got 'nan'"));
}

}  // namespace
}  // namespace shears
