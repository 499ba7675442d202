// Inputs that crashed a file reader (found by the fuzz harnesses in tests/fuzz/, or by reading
// the code they exercise): each must now be refused with one shears::Error.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "data/image_folder.hpp"
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
  fs::create_directories(dir.path() / "root" / "class");
  fs::copy_file(kRegressions / "image-jpeg-dht-434-codes.jpg", dir.path() / "root" / "class" / "x.jpg");
  const std::string root = (dir.path() / "root").string();
  CHECK_THROWS_AS(data::load_image_folder(root), Error);
  CHECK_THROWS_WITH(data::load_image_folder(root), Catch::Contains("Huffman table at offset 6 has 434 codes"));
}

// The same stb_image converted a 16-bit PNM's channels with its 8-bit routine, then read twice
// the pixels it had (ASan: heap-buffer-overflow in stbi__convert_16_to_8): a grayscale PGM whose
// maxval (2554) makes it 16-bit, loaded as RGB. Loaded as grayscale it needs no conversion.
TEST_CASE("fuzz regression: a 16-bit PNM is not converted to other channels", "[fuzz][data]") {
  TempDir dir;
  fs::create_directories(dir.path() / "root" / "class");
  fs::copy_file(kRegressions / "image-pgm-16bit-as-rgb.pgm", dir.path() / "root" / "class" / "x.pgm");
  const std::string root = (dir.path() / "root").string();
  CHECK_THROWS_AS(data::load_image_folder(root, {.channels = 3}), Error);
  CHECK_THROWS_WITH(data::load_image_folder(root, {.channels = 3}),
                    Catch::Contains("16-bit PNM image of 1 channel(s) cannot be converted to 3"));
  CHECK(data::load_image_folder(root, {.channels = 1})->size() == 1);
}

}  // namespace
}  // namespace shears
