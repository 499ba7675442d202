// safetensors: round trips, the writer's exact bytes, atomic writes, one hand-made bad file per
// validation rule, and files exchanged with numpy / PyTorch (tools/safetensors_np.py).
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>

#include "core/error.hpp"
#include "nn/safetensors.hpp"
#include "tests/helpers.hpp"

namespace shears::safetensors {
namespace {

using test::TempDir;

namespace fs = std::filesystem;

constexpr const char* kFixture = SHEARS_FIXTURES "/safetensors_from_python.safetensors";
constexpr const char* kBad = "bad.safetensors";  // the path parse() reports

std::string le64(uint64_t v) {
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &v, 8);
  return bytes;
}

// A file from its parts: 8-byte length, header text, byte buffer.
std::string file_of(const std::string& header, const std::string& buffer = "") {
  return le64(header.size()) + header + buffer;
}

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string bytes;
  for (T v : values) bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  return bytes;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The header text and the byte buffer of a file's bytes (no validation: the tests check them).
std::pair<std::string, std::string> split(const std::string& file) {
  uint64_t n;
  std::memcpy(&n, file.data(), 8);
  return {file.substr(8, n), file.substr(8 + n)};
}

uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

std::vector<uint32_t> bits_of(const Tensor& t) {
  std::vector<uint32_t> out;
  for (float v : t.to_vector()) out.push_back(bits(v));
  return out;
}

Entry entry(const std::string& name, Dtype dtype, const Shape& shape, const std::vector<float>& values) {
  return {name, Tensor::from_vector(shape, values), dtype};
}

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST_CASE("dtype names and element sizes are the spec's", "[safetensors]") {
  const std::vector<std::pair<Dtype, std::string>> names = {
      {Dtype::BOOL, "BOOL"}, {Dtype::U8, "U8"},   {Dtype::I8, "I8"},   {Dtype::I16, "I16"}, {Dtype::U16, "U16"},
      {Dtype::I32, "I32"},   {Dtype::U32, "U32"}, {Dtype::I64, "I64"}, {Dtype::U64, "U64"}, {Dtype::F16, "F16"},
      {Dtype::BF16, "BF16"}, {Dtype::F32, "F32"}, {Dtype::F64, "F64"}};
  for (const auto& [dtype, name] : names) CHECK(dtype_name(dtype) == name);
  CHECK(dtype_size(Dtype::BOOL) == 1);
  CHECK(dtype_size(Dtype::I16) == 2);
  CHECK(dtype_size(Dtype::BF16) == 2);
  CHECK(dtype_size(Dtype::U32) == 4);
  CHECK(dtype_size(Dtype::F32) == 4);
  CHECK(dtype_size(Dtype::I64) == 8);
  CHECK(dtype_size(Dtype::F64) == 8);
}

// Values each dtype holds exactly, with its extremes (floats: signed zero, subnormals, inf, NaN).
std::vector<Entry> every_dtype() {
  return {
      entry("bool", Dtype::BOOL, {2, 2}, {0, 1, 1, 0}),
      entry("u8", Dtype::U8, {2, 2}, {0, 1, 128, 255}),
      entry("i8", Dtype::I8, {2, 2}, {-128, -1, 0, 127}),
      entry("i16", Dtype::I16, {2, 2}, {-32768, -1, 0, 32767}),
      entry("u16", Dtype::U16, {2, 2}, {0, 1, 65534, 65535}),
      entry("i32", Dtype::I32, {2, 2}, {-0x1p31f, -16777216, 0, 2147483520.f}),  // largest float < 2^31
      entry("u32", Dtype::U32, {2, 2}, {0, 1, 16777216, 4294967040.f}),
      entry("i64", Dtype::I64, {2, 2}, {-0x1p63f, -1, 1875, 9223371487098961920.f}),
      entry("u64", Dtype::U64, {2, 2}, {0, 1, 0x1p40f, 18446742974197923840.f}),
      entry("f16", Dtype::F16, {8}, {-0.f, 65504, 0x1p-24f, 0x1p-14f, -2.5f, kInf, -kInf, kNaN}),
      entry("bf16", Dtype::BF16, {2, 3}, {-0.f, 1, from_bits(0x7F7F0000), from_bits(0x00010000), -kInf, kNaN}),
      entry("f32", Dtype::F32, {8},
            {-0.f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
             std::numeric_limits<float>::lowest(), kInf, from_bits(0x7FC12345), 0.1f, -3.7f}),
      entry("f64", Dtype::F64, {2, 1, 3}, {-0.f, std::numeric_limits<float>::denorm_min(), 0.1f, kInf, -kInf, kNaN}),
  };
}

TEST_CASE("every dtype round-trips bit-exactly with its dtype and shape", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "all.safetensors").string();
  const std::vector<Entry> saved = every_dtype();
  save(path, saved);
  const File file = load(path);
  REQUIRE(file.tensors.size() == saved.size());
  for (const Entry& e : saved) {
    INFO(e.name);
    const Entry* got = file.find(e.name);
    REQUIRE(got != nullptr);
    CHECK(got->dtype == e.dtype);
    CHECK(got->value.shape() == e.value.shape());
    CHECK(bits_of(got->value) == bits_of(e.value));
  }
  CHECK(file.find("absent") == nullptr);
  // Saving what was loaded reproduces the file byte for byte.
  const std::string again = (dir.path / "again.safetensors").string();
  save(again, file.tensors);
  CHECK(read_bytes(again) == read_bytes(path));
}

TEST_CASE("the writer produces the reference implementation's bytes", "[safetensors]") {
  // Expected bytes from the tests in huggingface/safetensors safetensors/src/tensor.rs:
  // test_serialization, test_serialization_forced_alignement, test_empty.
  TempDir dir;
  const std::string path = (dir.path / "ref.safetensors").string();
  const std::string data = bytes_of<float>({0, 1, 2, 3, 4, 5});

  save(path, {entry("attn.0", Dtype::F32, {1, 2, 3}, {0, 1, 2, 3, 4, 5})});
  CHECK(read_bytes(path) == file_of(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", data));

  save(path, {entry("attn0", Dtype::F32, {1, 1, 2, 3}, {0, 1, 2, 3, 4, 5})});
  CHECK(read_bytes(path) ==
        file_of(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + std::string(7, ' '), data));

  save(path, {});
  CHECK(read_bytes(path) == file_of("{}      "));
  save(path, {}, {{"framework", "pt"}});
  CHECK(read_bytes(path) == file_of(R"({"__metadata__":{"framework":"pt"}})"
                                    "     "));
}

TEST_CASE("F16 and BF16 are written rounded to nearest even, as PyTorch's .half() and .bfloat16()", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "round.safetensors").string();
  save(path, {entry("h", Dtype::F16, {11},
                    {1 + 0x1p-11f, 1 + 0x3p-11f, 65519, 65520, -1e6f, 0x1p-25f, 0x1.8p-25f, 0x3p-25f, -0x1p-26f,
                     std::numeric_limits<float>::denorm_min(), kNaN}),
              entry("b", Dtype::BF16, {6},
                    {1 + 0x1p-8f, 1 + 0x3p-8f, 1 + 0x1p-8f + 0x1p-20f, std::numeric_limits<float>::max(),
                     from_bits(0x7FC00001), from_bits(0xFFA00000)}),
              entry("i", Dtype::I32, {1}, {-2})});
  const auto [header, buffer] = split(read_bytes(path));
  // Written order: I32, then BF16, then F16 (the reference's dtype order).
  REQUIRE(buffer.size() == 4 + 12 + 22);
  CHECK(buffer.substr(0, 4) == bytes_of<int32_t>({-2}));
  CHECK(buffer.substr(4, 12) == bytes_of<uint16_t>({0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7FC0, 0xFFE0}));
  CHECK(buffer.substr(16) ==
        bytes_of<uint16_t>({0x3C00, 0x3C02, 0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0001, 0x0002, 0x8000, 0x0000, 0x7E00}));
  // Reading back widens exactly.
  const File file = load(path);
  CHECK(file.find("h")->value.to_vector()[1] == 1 + 0x1p-9f);
  CHECK(file.find("h")->value.to_vector()[7] == 0x1p-23f);
  CHECK(file.find("b")->value.to_vector()[2] == 1 + 0x1p-7f);
}

TEST_CASE("0-rank and empty tensors round-trip", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "shapes.safetensors").string();
  save(path, {{"bn.num_batches_tracked", Tensor::scalar(1875), Dtype::I64},
              {"none", Tensor::zeros({0}), Dtype::F32},
              {"none3", Tensor::zeros({2, 0, 3}), Dtype::F16},
              {"w", Tensor::ones({3}), Dtype::F32}});
  const auto [header, buffer] = split(read_bytes(path));
  CHECK_THAT(header, Catch::Contains(R"("bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]})"));
  CHECK_THAT(header, Catch::Contains(R"("none":{"dtype":"F32","shape":[0],"data_offsets":[8,8]})"));
  CHECK_THAT(header, Catch::Contains(R"("none3":{"dtype":"F16","shape":[2,0,3],"data_offsets":[20,20]})"));
  CHECK(buffer.size() == 20);

  const File file = load(path);
  const Entry* scalar = file.find("bn.num_batches_tracked");
  REQUIRE(scalar != nullptr);
  CHECK(scalar->value.dim() == 0);
  CHECK(scalar->value.item() == 1875.f);
  CHECK(file.find("none")->value.shape() == Shape{0});
  CHECK(file.find("none3")->value.shape() == Shape{2, 0, 3});
  CHECK(file.find("w")->value.to_vector() == std::vector<float>{1, 1, 1});
}

TEST_CASE("metadata round-trips as strings, and is omitted when empty", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "meta.safetensors").string();
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"shears.version", "0.1.0"},
                                                       {"note", "quotes \" backslash \\ newline \n"},
                                                       {"r\xC3\xA9sum\xC3\xA9", "\xF0\x9F\x99\x82"},
                                                       {"", "empty key"}};
  save(path, {entry("w", Dtype::F32, {1}, {2})}, metadata);
  CHECK(load(path).metadata == metadata);

  save(path, {entry("w", Dtype::F32, {1}, {2})});
  CHECK(load(path).metadata.empty());
  CHECK_THAT(split(read_bytes(path)).first, !Catch::Contains("__metadata__"));
}

TEST_CASE("the writer is deterministic: same input, same bytes, whatever the input order", "[safetensors]") {
  TempDir dir;
  const std::string a = (dir.path / "a.safetensors").string(), b = (dir.path / "b.safetensors").string();
  std::vector<Entry> tensors = every_dtype();
  save(a, tensors, {{"k", "v"}, {"a", "b"}});
  std::reverse(tensors.begin(), tensors.end());
  save(b, tensors, {{"a", "b"}, {"k", "v"}});
  const std::string bytes = read_bytes(a);
  CHECK(read_bytes(b) == bytes);

  // The header is padded with spaces to a multiple of 8, so the buffer starts 8-aligned.
  const auto [header, buffer] = split(bytes);
  CHECK(header.size() % 8 == 0);
  CHECK(header.find_last_not_of(' ') == header.rfind('}'));
  // Tensors come back in file order: widest dtypes first (the reference writer's order), then by
  // name, which leaves every tensor aligned to its element size.
  std::vector<std::string> order;
  for (const Entry& e : load(a).tensors) order.push_back(e.name);
  CHECK(order == std::vector<std::string>{"u64", "i64", "f64", "f32", "u32", "i32", "bf16", "f16", "u16", "i16", "i8",
                                          "u8", "bool"});
  for (const Entry& e : load(a).tensors) {
    const std::size_t at = header.find("\"" + e.name + "\":");
    REQUIRE(at != std::string::npos);
    const std::size_t begin = std::stoull(header.substr(header.find("\"data_offsets\":[", at) + 16));
    CHECK(begin % dtype_size(e.dtype) == 0);
  }
}

// The names in a directory, sorted: what a save leaves behind.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST_CASE("save is atomic: a failed write leaves no partial file and no temporary file", "[safetensors]") {
  TempDir dir;
  const std::vector<Entry> good = {entry("w", Dtype::F32, {2}, {1, 2})};

  SECTION("into a directory that does not exist") {
    const fs::path path = dir.path / "missing" / "x.safetensors";
    CHECK_THROWS_WITH(save(path.string(), good),
                      Catch::StartsWith(path.string() + ": save: expected to create a temporary file " +
                                        path.string() + ".tmp.XXXXXX, got ") &&
                          Catch::Contains("No such file or directory"));
    CHECK(listing(dir.path).empty());
  }
  SECTION("into a read-only location") {
    // /proc refuses new files even to root (a chmod'ed directory would not stop root).
    const std::string path = "/proc/shears_safetensors_test.safetensors";
    CHECK_THROWS_AS(save(path, good), Error);
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("an existing good file survives a failed overwrite") {
    const std::string path = (dir.path / "model.safetensors").string();
    save(path, good);
    const std::string before = read_bytes(path);
    // F32 "a" is written before I32 "z" fails, so the temporary file was partial when save threw.
    CHECK_THROWS_WITH(
        save(path, {entry("a", Dtype::F32, {4}, {1, 2, 3, 4}), entry("z", Dtype::I32, {2}, {1, 0.5f})}),
        path + ": tensor 'z': value: expected integers in [-2147483648, 2147483647] for I32, got 0.5 at element 1");
    CHECK(read_bytes(path) == before);
    CHECK(listing(dir.path) == std::vector<std::string>{"model.safetensors"});
  }
  SECTION("a failed rename removes the temporary file and leaves the target alone") {
    const fs::path target = dir.path / "occupied";
    fs::create_directory(target);
    std::ofstream(target / "keep.txt") << "keep";
    CHECK_THROWS_WITH(save(target.string(), good), Catch::Contains(": save: expected to rename "));
    CHECK(fs::is_directory(target));
    CHECK(fs::exists(target / "keep.txt"));
    CHECK(listing(dir.path) == std::vector<std::string>{"occupied"});
  }
  SECTION("the file is readable by others, as open(…, 0644) would make it") {
    const fs::path path = dir.path / "model.safetensors";
    save(path.string(), good);
    CHECK((fs::status(path).permissions() & fs::perms::others_read) == fs::perms::others_read);
  }
}

TEST_CASE("concurrent writers of one path never share a temporary file", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "model.safetensors").string();
  SECTION("another writer's temporary file is left alone") {
    // A fixed "<path>.tmp" would be truncated by this save and renamed away under the other writer.
    std::ofstream(path + ".tmp") << "the other writer's half-written file";
    save(path, {entry("w", Dtype::F32, {2}, {1, 2})});
    CHECK(read_bytes(path + ".tmp") == "the other writer's half-written file");
    CHECK(load(path).find("w")->value.to_vector() == std::vector<float>{1, 2});
  }
  SECTION("two threads saving the same path leave one whole file and no temporary files") {
    std::atomic<int> failures = 0;
    auto writer = [&](float value) {
      for (int i = 0; i < 20; ++i) {
        try {
          save(path, {entry("w", Dtype::F32, {256}, std::vector<float>(256, value))});
        } catch (const Error&) {
          ++failures;
        }
      }
    };
    std::thread a(writer, 1.f), b(writer, 2.f);
    a.join();
    b.join();
    CHECK(failures == 0);
    const std::vector<float> w = load(path).find("w")->value.to_vector();
    CHECK((w == std::vector<float>(256, 1.f) || w == std::vector<float>(256, 2.f)));
    CHECK(listing(dir.path) == std::vector<std::string>{"model.safetensors"});
  }
}

TEST_CASE("save refuses what the format or the dtype cannot hold, before writing anything", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "x.safetensors").string();
  const Entry w = entry("w", Dtype::F32, {1}, {1});
  CHECK_THROWS_WITH(save(path, {w, w}), path + ": tensor 'w': name: expected a name used once, got a duplicate");
  CHECK_THROWS_WITH(save(path, {entry("__metadata__", Dtype::F32, {1}, {1})}),
                    Catch::StartsWith(path + ": tensor '__metadata__': name: expected a name other than __metadata__"));
  CHECK_THROWS_WITH(save(path, {Entry{"empty", Tensor(), Dtype::F32}}),
                    path + ": tensor 'empty': value: expected a defined tensor, got an empty handle");
  CHECK_THROWS_WITH(save(path, {entry("\xFF", Dtype::F32, {1}, {1})}),
                    Catch::StartsWith(path + ": header: expected UTF-8 tensor names and metadata, got "));
  CHECK_THROWS_WITH(save(path, {entry("i8", Dtype::I8, {2}, {127, 128})}),
                    path + ": tensor 'i8': value: expected integers in [-128, 127] for I8, got 128 at element 1");
  CHECK_THROWS_WITH(save(path, {entry("u8", Dtype::U8, {1}, {-1})}),
                    path + ": tensor 'u8': value: expected integers in [0, 255] for U8, got -1 at element 0");
  CHECK_THROWS_WITH(save(path, {entry("i64", Dtype::I64, {2}, {-0x1p63f, 0x1p63f})}),
                    Catch::EndsWith("for I64, got 9.22337204e+18 at element 1"));
  CHECK_THROWS_WITH(save(path, {entry("u64", Dtype::U64, {1}, {kNaN})}),
                    Catch::EndsWith("for U64, got nan at element 0"));
  CHECK_THROWS_WITH(save(path, {entry("i32", Dtype::I32, {1}, {kInf})}),
                    Catch::EndsWith("for I32, got inf at element 0"));
  CHECK_THROWS_WITH(save(path, {entry("mask", Dtype::BOOL, {2}, {1, 0.5f})}),
                    path + ": tensor 'mask': value: expected 0 or 1 for BOOL, got 0.5 at element 1");
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("load names the file when it cannot be read", "[safetensors]") {
  TempDir dir;
  const std::string missing = (dir.path / "missing.safetensors").string();
  CHECK_THROWS_WITH(load(missing), missing + ": file: expected a readable file, got No such file or directory");
  CHECK_THROWS_WITH(load(dir.path.string()), dir.path.string() + ": file: expected a regular file, got a directory");
}

TEST_CASE("load refuses a FIFO or a device at once instead of blocking or reading forever", "[safetensors]") {
  TempDir dir;
  const std::string fifo = (dir.path / "w.safetensors").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // no writer: a blocking open would never return
  CHECK_THROWS_WITH(load(fifo), fifo + ": file: expected a regular file, got a FIFO");
  CHECK_THROWS_WITH(load("/dev/zero"), "/dev/zero: file: expected a regular file, got a character device");
  CHECK_THROWS_WITH(load("/dev/urandom"), "/dev/urandom: file: expected a regular file, got a character device");
}

// ---- hand-made bad files: one per validation rule ----

const std::string kGoodHeader = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
const std::string kTwoFloats = bytes_of<float>({1.5f, -2});

// The header of a single tensor "w" with the given fields.
std::string w_header(const std::string& fields) { return R"({"w":{)" + fields + "}}"; }

void check_rejected(const std::string& bytes, const std::string& message) {
  CHECK_THROWS_WITH(parse(bytes, kBad), std::string(kBad) + ": " + message);
}

TEST_CASE("readers accept valid files, padded or not, whatever the header order", "[safetensors]") {
  CHECK(parse(file_of(kGoodHeader, kTwoFloats), kBad).find("w")->value.to_vector() == std::vector<float>{1.5f, -2});
  // Padding may be any JSON whitespace, and older writers leave the buffer unaligned.
  CHECK(parse(file_of(kGoodHeader + " \n\t ", kTwoFloats), kBad).tensors.size() == 1);
  CHECK(parse(file_of("{}"), kBad).tensors.empty());
  // Header order is not file order; tensors come back sorted by offsets.
  const File file = parse(file_of(R"({"b":{"dtype":"I16","shape":[1],"data_offsets":[4,6]},)"
                                  R"("e":{"dtype":"F64","shape":[0],"data_offsets":[4,4]},)"
                                  R"("a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                                  bytes_of<float>({3}) + bytes_of<int16_t>({-7})),
                          kBad);
  REQUIRE(file.tensors.size() == 3);
  CHECK(file.tensors[0].name == "a");
  CHECK(file.tensors[1].name == "e");
  CHECK(file.tensors[2].name == "b");
  CHECK(file.tensors[2].value.item() == -7.f);
}

TEST_CASE("rejects bad header lengths", "[safetensors]") {
  check_rejected("abc", "header length: expected a file of at least 8 bytes, got 3 bytes");
  check_rejected(le64(100) + "{}",
                 "header length: expected at most 2 bytes (the file size minus 8), got 100 (a truncated file?)");
  check_rejected(le64(100'000'001) + "{}",
                 "header length: expected at most 100000000 bytes (the reference's MAX_HEADER_SIZE), got 100000001 "
                 "(is this a safetensors file?)");
  check_rejected(le64(~uint64_t{0}) + "{}",
                 "header length: expected at most 100000000 bytes (the reference's MAX_HEADER_SIZE), got "
                 "18446744073709551615 (is this a safetensors file?)");
}

TEST_CASE("rejects a header that is not a JSON object", "[safetensors]") {
  check_rejected(file_of(""), "header: expected a JSON object starting with '{', got an empty header");
  check_rejected(file_of("[1]     "), "header: expected a JSON object starting with '{', got first byte 0x5B");
  check_rejected(file_of(" {}"), "header: expected a JSON object starting with '{', got first byte 0x20");
}

TEST_CASE("rejects JSON syntax errors, reporting the parser's byte position", "[safetensors]") {
  // The stray '}' after the comma is header byte 21 (1-based), file offset 28.
  CHECK_THROWS_WITH(
      parse(file_of(R"({"w":{"dtype":"F32",}})"), kBad),
      Catch::StartsWith(std::string(kBad) + ": header: expected valid JSON, got a syntax error at header "
                                            "byte 21 (file offset 28): [json.exception.parse_error.101]"));
  // A truncated header fails at the end of input: the byte after the last (file offset 13 = EOF).
  CHECK_THROWS_WITH(parse(file_of(R"({"w":)"), kBad),
                    Catch::Contains("syntax error at header byte 6 (file offset 13)"));
  CHECK_THROWS_WITH(parse(file_of("{\"\xFF\":1}"), kBad), Catch::Contains("header: expected valid JSON"));
  CHECK_THROWS_WITH(parse(file_of(w_header(R"("dtype":"F32","shape":[1e999],"data_offsets":[0,0])")), kBad),
                    Catch::Contains("header: expected valid JSON, got [json.exception.out_of_range.406]"));
  CHECK_THROWS_WITH(parse(file_of("{}x"), kBad), Catch::Contains("syntax error at header byte 3"));
}

TEST_CASE("rejects duplicate keys, which nlohmann-json would silently collapse", "[safetensors]") {
  const std::string w = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  check_rejected(file_of("{" + w + "," + w + "}", kTwoFloats),
                 "tensor 'w': name: expected a key that appears once, got a duplicate");
  check_rejected(file_of(w_header(R"("dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8])"), kTwoFloats),
                 "tensor 'w': dtype: expected a key that appears once, got a duplicate");
  check_rejected(file_of(R"({"__metadata__":{"a":"1","a":"2"}})"),
                 "__metadata__: 'a': expected a key that appears once, got a duplicate");
  check_rejected(file_of(R"({"__metadata__":{},"__metadata__":{}})"),
                 "__metadata__: expected a key that appears once, got a duplicate");
}

TEST_CASE("rejects entries that are not exactly {dtype, shape, data_offsets}", "[safetensors]") {
  check_rejected(file_of(R"({"w":[1]})"),
                 "tensor 'w': entry: expected an object with dtype, shape and data_offsets, got [1]");
  check_rejected(file_of(w_header(R"("dtype":"F32","shape":[2])"), kTwoFloats),
                 "tensor 'w': data_offsets: expected a field, got none");
  check_rejected(file_of(w_header(R"("dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1])"), kTwoFloats),
                 "tensor 'w': stride: expected only the fields dtype, shape and data_offsets, got an unknown field");
}

TEST_CASE("rejects unknown dtypes", "[safetensors]") {
  const std::string expected =
      "tensor 'w': dtype: expected one of BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, got ";
  check_rejected(file_of(w_header(R"("dtype":"F8_E5M2","shape":[8],"data_offsets":[0,8])"), kTwoFloats),
                 expected + "\"F8_E5M2\"");
  check_rejected(file_of(w_header(R"("dtype":"f32","shape":[2],"data_offsets":[0,8])"), kTwoFloats),
                 expected + "\"f32\"");
  check_rejected(file_of(w_header(R"("dtype":4,"shape":[2],"data_offsets":[0,8])"), kTwoFloats), expected + "4");
}

TEST_CASE("rejects negative, non-integer or overflowing shapes", "[safetensors]") {
  const auto with_shape = [](const std::string& shape) {
    return file_of(w_header(R"("dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8])"), kTwoFloats);
  };
  check_rejected(with_shape("[2,-3]"), "tensor 'w': shape[1]: expected a non-negative integer below 2^63, got -3");
  check_rejected(with_shape("[1.5]"), "tensor 'w': shape[0]: expected a non-negative integer below 2^63, got 1.5");
  check_rejected(with_shape("[2.0]"), "tensor 'w': shape[0]: expected a non-negative integer below 2^63, got 2.0");
  check_rejected(with_shape(R"(["2"])"), "tensor 'w': shape[0]: expected a non-negative integer below 2^63, got \"2\"");
  check_rejected(with_shape("[9223372036854775808,0]"),
                 "tensor 'w': shape[0]: expected a non-negative integer below 2^63, got 9223372036854775808");
  check_rejected(with_shape("2"), "tensor 'w': shape: expected an array of non-negative integers, got 2");
  check_rejected(with_shape("[4294967296,4294967296]"),
                 "tensor 'w': shape: expected fewer than 2^63 elements, got [4294967296,4294967296]");
}

TEST_CASE("rejects a shape whose size is not the span of its offsets, without allocating it", "[safetensors]") {
  check_rejected(
      file_of(w_header(R"("dtype":"F32","shape":[3],"data_offsets":[0,8])"), kTwoFloats),
      "tensor 'w': data_offsets: expected a span of 3 elements × 4 bytes (shape [3], F32), got 8 bytes [0,8]");
  check_rejected(
      file_of(w_header(R"("dtype":"F64","shape":[2],"data_offsets":[0,8])"), kTwoFloats),
      "tensor 'w': data_offsets: expected a span of 2 elements × 8 bytes (shape [2], F64), got 8 bytes [0,8]");
  check_rejected(
      file_of(w_header(R"("dtype":"F32","shape":[2,0],"data_offsets":[0,8])"), kTwoFloats),
      "tensor 'w': data_offsets: expected a span of 0 elements × 4 bytes (shape [2,0], F32), got 8 bytes [0,8]");
  // A claim of 4 TB in an 8-byte buffer: refused before any allocation.
  check_rejected(
      file_of(w_header(R"("dtype":"F32","shape":[1000000000000],"data_offsets":[0,8])"), kTwoFloats),
      "tensor 'w': data_offsets: expected a span of 1000000000000 elements × 4 bytes (shape [1000000000000], "
      "F32), got 8 bytes [0,8]");
}

TEST_CASE("rejects data offsets that are malformed or out of range", "[safetensors]") {
  const auto with_offsets = [](const std::string& offsets) {
    return file_of(w_header(R"("dtype":"F32","shape":[2],"data_offsets":)" + offsets), kTwoFloats);
  };
  check_rejected(with_offsets("[0]"),
                 "tensor 'w': data_offsets: expected [begin, end] of non-negative integers, got [0]");
  check_rejected(with_offsets("[0,8,8]"),
                 "tensor 'w': data_offsets: expected [begin, end] of non-negative integers, got [0,8,8]");
  check_rejected(with_offsets("[-8,0]"),
                 "tensor 'w': data_offsets: expected [begin, end] of non-negative integers, got [-8,0]");
  check_rejected(with_offsets(R"({"begin":0})"),
                 "tensor 'w': data_offsets: expected [begin, end] of non-negative integers, got an object");
  check_rejected(with_offsets("[8,0]"), "tensor 'w': data_offsets: expected begin <= end, got [8,0]");
  check_rejected(with_offsets("[8,16]"),
                 "tensor 'w': data_offsets: expected end <= 8 (the size of the byte buffer), got [8,16]");
  check_rejected(
      with_offsets("[0,18446744073709551615]"),
      "tensor 'w': data_offsets: expected end <= 8 (the size of the byte buffer), got [0,18446744073709551615]");
}

TEST_CASE("rejects overlaps, holes and unindexed bytes in the buffer", "[safetensors]") {
  const std::string buffer12 = bytes_of<float>({1, 2, 3});
  check_rejected(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         buffer12),
                 "tensor 'b': data_offsets: expected to begin at 8 (the end of tensor 'a'), got 4 (overlapping)");
  check_rejected(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                         kTwoFloats),
                 "tensor 'z': data_offsets: expected to begin at 8 (the end of tensor 'a'), got 4 (overlapping)");
  check_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         buffer12),
                 "tensor 'b': data_offsets: expected to begin at 4 (the end of tensor 'a'), got 8 (a hole of 4 bytes)");
  check_rejected(
      file_of(w_header(R"("dtype":"F32","shape":[2],"data_offsets":[4,12])"), buffer12),
      "tensor 'w': data_offsets: expected to begin at 0 (the start of the buffer), got 4 (a hole of 4 bytes)");
  check_rejected(file_of(kGoodHeader, buffer12),
                 "byte buffer: expected all 12 bytes indexed by tensors, got 4 bytes after the last tensor");
  check_rejected(file_of("{}", "junk"),
                 "byte buffer: expected all 4 bytes indexed by tensors, got 4 bytes after the last tensor");
}

TEST_CASE("rejects __metadata__ that is not a map of strings", "[safetensors]") {
  check_rejected(file_of(R"({"__metadata__":["pt"]})"), "__metadata__: expected an object of strings, got [\"pt\"]");
  check_rejected(file_of(R"({"__metadata__":{"epochs":3}})"), "__metadata__: 'epochs': expected a string, got 3");
  check_rejected(file_of(R"({"__metadata__":{"args":{"lr":"0.1"}}})"),
                 "__metadata__: 'args': expected a string, got an object");
}

TEST_CASE("rejects BOOL bytes other than 0 and 1", "[safetensors]") {
  check_rejected(file_of(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x01\x02\x00", 3)),
                 "tensor 'm': data: expected BOOL bytes 0 or 1, got 2 at element 1");
}

// ---- exchange with numpy and PyTorch ----

TEST_CASE("a file written by numpy (tools/gen_safetensors_fixture.py) loads with exact values",
          "[safetensors][python]") {
  const File file = load(kFixture);
  CHECK(file.metadata.at("format") == "pt");
  CHECK(file.metadata.at("generator") == "python3 tools/gen_safetensors_fixture.py");
  CHECK(file.metadata.count("numpy") == 1);
  CHECK(file.metadata.count("torch") == 1);

  const Entry* conv = file.find("conv1.weight");
  REQUIRE(conv != nullptr);
  CHECK(conv->dtype == Dtype::F32);
  REQUIRE(conv->value.shape() == Shape{4, 3, 2, 2});
  for (int64_t i = 0; i < 48; ++i) CHECK(conv->value.data()[i] == (static_cast<float>(i) - 24) / 8);

  const Entry* tracked = file.find("bn1.num_batches_tracked");
  REQUIRE(tracked != nullptr);
  CHECK(tracked->dtype == Dtype::I64);
  CHECK(tracked->value.dim() == 0);
  CHECK(tracked->value.item() == 1875.f);

  CHECK(file.find("bn1.running_var")->value.to_vector() == std::vector<float>{0.25f, 1.5f, 3});
  // 2^24 + 1 rounds to 2^24: integers are exact only below 2^24.
  CHECK(file.find("labels")->value.to_vector() ==
        std::vector<float>{-0x1p63f, -16777216, -1, 0, 1, 16777215, 16777216, 0x1p40f});
  const Entry* moments = file.find("moments");
  CHECK(moments->dtype == Dtype::F64);
  CHECK(moments->value.to_vector() ==
        std::vector<float>{static_cast<float>(1.0 / 3.0), -2.5f, static_cast<float>(0.1), 0, kInf});
  CHECK(bits_of(file.find("special")->value) ==
        std::vector<uint32_t>{0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00000001, 0x7F7FFFFF});
  CHECK(file.find("empty")->value.shape() == Shape{2, 0});

  // numpy's float16 → float32, and shears' reading of numpy's float16 bytes, agree bit for bit.
  CHECK(file.find("f16.numpy")->dtype == Dtype::F16);
  CHECK(bits_of(file.find("f16.numpy")->value) == bits_of(file.find("f16.numpy_widened")->value));

  // File order: by data offsets.
  std::vector<std::string> names;
  for (const Entry& e : file.tensors) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"bn1.num_batches_tracked", "labels", "moments", "bn1.running_var",
                                          "conv1.weight", "empty", "f16.numpy_widened", "f16.source", "special",
                                          "f16.numpy", "bf16.torch_bits", "f16.numpy_bits"});
}

TEST_CASE("shears rounds to F16 as numpy does and to BF16 as PyTorch does", "[safetensors][python]") {
  const File fixture = load(kFixture);
  const Tensor source = fixture.find("f16.source")->value;
  TempDir dir;
  const std::string path = (dir.path / "narrow.safetensors").string();
  save(path, {{"b", source, Dtype::BF16}, {"h", source, Dtype::F16}});
  const std::string buffer = split(read_bytes(path)).second;
  const int64_t n = source.numel();
  REQUIRE(buffer.size() == static_cast<std::size_t>(4 * n));
  const std::vector<float> numpy_f16 = fixture.find("f16.numpy_bits")->value.to_vector();
  const std::vector<float> torch_bf16 = fixture.find("bf16.torch_bits")->value.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    INFO("element " << i << ", value " << source.data()[i]);
    uint16_t bf16, f16;
    std::memcpy(&bf16, buffer.data() + 2 * i, 2);
    std::memcpy(&f16, buffer.data() + 2 * (n + i), 2);
    CHECK(f16 == numpy_f16[i]);
    // PyTorch's vectorised path writes NaN as 0xFFFF, its scalar path as 0x7FC0 (shears' choice).
    const auto torch_bits = static_cast<uint16_t>(torch_bf16[i]);
    if (std::isnan(source.data()[i]))
      CHECK(((torch_bits & 0x7F80) == 0x7F80 && (bf16 & 0x7F80) == 0x7F80 && (bf16 & 0x7F)));
    else
      CHECK(bf16 == torch_bits);
  }
}

// Model checkpoints written by shears are loaded by PyTorch itself in tests/test_models.cpp
// (tools/check_shears_checkpoint.py); this pins the bytes of every dtype the reader there relies on.
TEST_CASE("a file written by shears for numpy and PyTorch has the expected header and data", "[safetensors]") {
  TempDir dir;
  const std::string path = (dir.path / "shears_to_python.safetensors").string();
  save(path,
       {entry("conv1.weight", Dtype::F32, {2, 1, 2, 2}, {-1, -0.75f, -0.5f, -0.25f, 0, 0.25f, 0.5f, 0.75f}),
        {"bn1.num_batches_tracked", Tensor::scalar(1875), Dtype::I64},
        entry("bn1.running_mean", Dtype::F64, {2}, {0.1f, -2.5f}),
        entry("fc.weight", Dtype::F16, {2}, {0.5f, -65504}),
        entry("fc.bias", Dtype::BF16, {1}, {1.5f}),
        entry("mask", Dtype::BOOL, {3}, {1, 0, 1}),
        entry("labels", Dtype::I32, {2}, {-7, 16777215})},
       {{"format", "pt"}, {"arch", "demo"}});
  const auto [header, buffer] = split(read_bytes(path));
  const std::string expected = R"({"__metadata__":{"arch":"demo","format":"pt"},)"
                               R"("bn1.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                               R"("bn1.running_mean":{"dtype":"F64","shape":[2],"data_offsets":[8,24]},)"
                               R"("conv1.weight":{"dtype":"F32","shape":[2,1,2,2],"data_offsets":[24,56]},)"
                               R"("labels":{"dtype":"I32","shape":[2],"data_offsets":[56,64]},)"
                               R"("fc.bias":{"dtype":"BF16","shape":[1],"data_offsets":[64,66]},)"
                               R"("fc.weight":{"dtype":"F16","shape":[2],"data_offsets":[66,70]},)"
                               R"("mask":{"dtype":"BOOL","shape":[3],"data_offsets":[70,73]}})";
  CHECK(header == expected + std::string((8 - expected.size() % 8) % 8, ' '));
  CHECK(buffer == bytes_of<int64_t>({1875}) + bytes_of<double>({0.1f, -2.5f}) +
                      bytes_of<float>({-1, -0.75f, -0.5f, -0.25f, 0, 0.25f, 0.5f, 0.75f}) +
                      bytes_of<int32_t>({-7, 16777215}) + bytes_of<uint16_t>({0x3FC0, 0x3800, 0xFBFF}) +
                      std::string("\x01\x00\x01", 3));
}

}  // namespace
}  // namespace shears::safetensors
