// safetensors reader and writer. The rules cited below come from the "Format" section of
// huggingface/safetensors README.md ("the spec") and the reference implementation
// safetensors/src/tensor.rs; how shears uses the format: docs/design.md#checkpoints.
#include "nn/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "core/error.hpp"
#include "core/file.hpp"

namespace shears::safetensors {

// Element bytes are copied as they are: the host must share the file's little-endian order.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using Json = nlohmann::json;
using detail::concat;

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // MAX_HEADER_SIZE in tensor.rs
constexpr const char* kMetadataKey = "__metadata__";
// A valid header nests three levels (the header, a tensor entry, its shape). Deeper values are
// refused while parsing: printing one for a message, as describe() does, recurses per level.
constexpr int kMaxHeaderDepth = 16;

// ---- error messages: "<path>: <subject>: expected …, got …" (docs/design.md#errors) ----

[[noreturn]] void fail(const std::string& path, const std::string& subject, const std::string& expected,
                       const std::string& got) {
  throw Error(path + ": " + subject + ": expected " + expected + ", got " + got);
}

std::string tensor_field(const std::string& tensor, const std::string& field) {
  return "tensor '" + tensor + "': " + field;
}

std::string metadata_field(const std::string& key) { return std::string(kMetadataKey) + ": '" + key + "'"; }

// A JSON value as a message shows it: objects by kind, anything else verbatim and shortened.
std::string describe(const Json& value) {
  if (value.is_object()) return "an object";
  std::string text = value.dump();
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

std::string float_text(float value) {
  std::ostringstream out;
  out << std::setprecision(9) << value;
  return out.str();
}

std::string system_error_text() { return std::generic_category().message(errno); }

// ---- element conversions ----

template <typename T>
T read_le(const char* bytes) {
  T value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

template <typename T>
void write_le(char* bytes, T value) {
  std::memcpy(bytes, &value, sizeof value);
}

// IEEE binary16 → binary32, exact.
float f16_to_f32(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  const uint32_t exponent = (half >> 10) & 0x1F, mantissa = half & 0x3FF;
  if (exponent == 0)  // zero or subnormal: mantissa × 2^-24
    return std::copysign(std::ldexp(static_cast<float>(mantissa), -24), sign ? -1.f : 1.f);
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7F800000 | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));        // rebias 15 → 127
}

// binary32 → binary16, rounding to nearest even as PyTorch's .half() does; overflow gives ±inf.
uint16_t f32_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) return sign | 0x7E00;  // NaN stays a (quiet) NaN
  if (magnitude < 0x38800000) {                      // below 2^-14: subnormal or zero in binary16
    // 0.5f has an ulp of 2^-24, the binary16 subnormal step, so the FPU's own round-to-nearest-even
    // of 0.5 + |value| leaves the rounded subnormal mantissa in the low bits.
    const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
    return sign | static_cast<uint16_t>(std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(0.5f));
  }
  // Rebias the exponent (127 → 15), round away 13 mantissa bits to nearest even (a carry moves
  // into the exponent); from 65520 up, and inf itself, the result saturates to inf.
  uint32_t rebiased = magnitude - (112u << 23);
  rebiased += 0x0FFF + ((rebiased >> 13) & 1);
  return sign | static_cast<uint16_t>(std::min<uint32_t>(rebiased >> 13, 0x7C00));
}

// bfloat16 is the upper half of a binary32: widening is a shift, narrowing rounds to nearest even
// as PyTorch's .bfloat16() does.
float bf16_to_f32(uint16_t bf16) { return std::bit_cast<float>(static_cast<uint32_t>(bf16) << 16); }

uint16_t f32_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // quiet NaN
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

// Integer dtypes widen to the nearest float32: exact while |v| < 2^24 (every count, label and
// num_batches_tracked a checkpoint holds), rounded beyond.
template <typename T>
void widen(const char* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(read_le<T>(src + i * sizeof(T)));
}

void widen_f16(const char* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(read_le<uint16_t>(src + 2 * i));
}

void widen_bf16(const char* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(read_le<uint16_t>(src + 2 * i));
}

template <typename T>
void narrow(const float* src, int64_t n, char* dst) {
  for (int64_t i = 0; i < n; ++i) write_le(dst + i * sizeof(T), static_cast<T>(src[i]));
}

void narrow_f16(const float* src, int64_t n, char* dst) {
  for (int64_t i = 0; i < n; ++i) write_le(dst + 2 * i, f32_to_f16(src[i]));
}

void narrow_bf16(const float* src, int64_t n, char* dst) {
  for (int64_t i = 0; i < n; ++i) write_le(dst + 2 * i, f32_to_bf16(src[i]));
}

// Integer dtypes hold a float32 exactly only when it is an integer in range. The bounds are the
// doubles −2^digits (or 0) and 2^digits (exclusive), exact where max() rounded to float would not be.
template <typename T>
bool fits(float value) {
  using Limits = std::numeric_limits<T>;
  const double v = value, high = std::ldexp(1.0, Limits::digits), low = Limits::is_signed ? -high : 0.0;
  return v >= low && v < high && std::trunc(v) == v;
}

// Exact integers (Entry::integers) of the dtypes that carry them: widening fails only on a U64
// element int64 cannot hold; narrowing returns the first element the dtype cannot hold, or -1.
template <typename T>
bool widen_exact(const char* src, int64_t n, int64_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = read_le<T>(src + i * sizeof(T));
    if (!std::in_range<int64_t>(v)) return false;
    dst[i] = static_cast<int64_t>(v);
  }
  return true;
}

template <typename T>
int64_t narrow_exact(const int64_t* src, int64_t n, char* dst) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::in_range<T>(src[i])) return i;
    write_le(dst + i * sizeof(T), static_cast<T>(src[i]));
  }
  return -1;
}

bool is_bit(float value) { return value == 0.f || value == 1.f; }
bool any_float(float) { return true; }  // floating dtypes round

template <typename T>
std::string integers() {
  using Limits = std::numeric_limits<T>;
  return concat("integers in [", +Limits::min(), ", ", +Limits::max(), "]");
}
std::string bits() { return "0 or 1"; }
std::string floats() { return "any float"; }

// writer_rank: position in tensor.rs's `enum Dtype` ("MUST be in increasing alignment order"),
// whose descending order, then the name, is the reference writer's tensor order.
// The codec columns: `widen` decodes n elements to float32; `holds` says whether a float32 value
// is stored exactly (encode refuses any other, saying what `expected` allows); `narrow` encodes.
// The exact columns serve Entry::integers (null for the dtypes that carry none).
struct DtypeInfo {
  Dtype dtype;
  const char* name;
  std::size_t size;
  int writer_rank;
  void (*widen)(const char* src, int64_t n, float* dst);
  bool (*holds)(float value);
  std::string (*expected)();
  void (*narrow)(const float* src, int64_t n, char* dst);
  bool (*widen_exact)(const char* src, int64_t n, int64_t* dst);
  int64_t (*narrow_exact)(const int64_t* src, int64_t n, char* dst);
};
constexpr DtypeInfo kDtypes[] = {
    {Dtype::BOOL, "BOOL", 1, 0, widen<uint8_t>, is_bit, bits, narrow<uint8_t>, nullptr, nullptr},
    {Dtype::U8, "U8", 1, 1, widen<uint8_t>, fits<uint8_t>, integers<uint8_t>, narrow<uint8_t>, nullptr, nullptr},
    {Dtype::I8, "I8", 1, 2, widen<int8_t>, fits<int8_t>, integers<int8_t>, narrow<int8_t>, widen_exact<int8_t>,
     narrow_exact<int8_t>},
    {Dtype::I16, "I16", 2, 3, widen<int16_t>, fits<int16_t>, integers<int16_t>, narrow<int16_t>, widen_exact<int16_t>,
     narrow_exact<int16_t>},
    {Dtype::U16, "U16", 2, 4, widen<uint16_t>, fits<uint16_t>, integers<uint16_t>, narrow<uint16_t>,
     widen_exact<uint16_t>, narrow_exact<uint16_t>},
    {Dtype::I32, "I32", 4, 7, widen<int32_t>, fits<int32_t>, integers<int32_t>, narrow<int32_t>, widen_exact<int32_t>,
     narrow_exact<int32_t>},
    {Dtype::U32, "U32", 4, 8, widen<uint32_t>, fits<uint32_t>, integers<uint32_t>, narrow<uint32_t>,
     widen_exact<uint32_t>, narrow_exact<uint32_t>},
    {Dtype::I64, "I64", 8, 11, widen<int64_t>, fits<int64_t>, integers<int64_t>, narrow<int64_t>, widen_exact<int64_t>,
     narrow_exact<int64_t>},
    {Dtype::U64, "U64", 8, 12, widen<uint64_t>, fits<uint64_t>, integers<uint64_t>, narrow<uint64_t>,
     widen_exact<uint64_t>, narrow_exact<uint64_t>},
    {Dtype::F16, "F16", 2, 5, widen_f16, any_float, floats, narrow_f16, nullptr, nullptr},
    {Dtype::BF16, "BF16", 2, 6, widen_bf16, any_float, floats, narrow_bf16, nullptr, nullptr},
    {Dtype::F32, "F32", 4, 9, widen<float>, any_float, floats, narrow<float>, nullptr, nullptr},
    // F64: widening rounds to nearest.
    {Dtype::F64, "F64", 8, 10, widen<double>, any_float, floats, narrow<double>, nullptr, nullptr},
};

constexpr bool table_follows_enum() {
  for (std::size_t i = 0; i < std::size(kDtypes); ++i)
    if (static_cast<std::size_t>(kDtypes[i].dtype) != i) return false;
  return std::size(kDtypes) == static_cast<std::size_t>(Dtype::F64) + 1;
}
static_assert(table_follows_enum(), "one kDtypes row per Dtype, in enum order");

const DtypeInfo& info(Dtype dtype) { return kDtypes[static_cast<std::size_t>(dtype)]; }

std::optional<Dtype> dtype_from_name(const std::string& name) {
  for (const DtypeInfo& row : kDtypes)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

std::string all_dtype_names() {
  std::string names;
  for (const DtypeInfo& row : kDtypes) names += (names.empty() ? "" : ", ") + std::string(row.name);
  return names;
}

void decode(const std::string& path, const std::string& name, Dtype dtype, const char* src, int64_t n, float* dst) {
  if (dtype == Dtype::BOOL)
    for (int64_t i = 0; i < n; ++i)
      if (const auto byte = static_cast<unsigned char>(src[i]); byte > 1)
        fail(path, tensor_field(name, "data"), "BOOL bytes 0 or 1", concat(+byte, " at element ", i));
  info(dtype).widen(src, n, dst);
}

// An entry's shape: its integers' when it has them (its value may then be undefined).
const Shape& shape_of(const Entry& entry) { return entry.integers ? entry.integers->shape : entry.value.shape(); }

std::string encode_integers(const std::string& path, const Entry& entry) {
  const DtypeInfo& row = info(entry.dtype);
  const std::vector<int64_t>& src = entry.integers->values;
  std::string bytes(src.size() * row.size, '\0');
  if (const int64_t bad = row.narrow_exact(src.data(), std::ssize(src), bytes.data()); bad >= 0)
    fail(path, tensor_field(entry.name, "integers"), concat(row.expected(), " for ", row.name),
         concat(src[bad], " at element ", bad));
  return bytes;
}

std::string encode(const std::string& path, const Entry& entry) {
  if (entry.integers) return encode_integers(path, entry);
  const DtypeInfo& row = info(entry.dtype);
  const float* src = entry.value.data();
  const int64_t n = entry.value.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!row.holds(src[i]))
      fail(path, tensor_field(entry.name, "value"), concat(row.expected(), " for ", row.name),
           concat(float_text(src[i]), " at element ", i));
  std::string bytes(static_cast<std::size_t>(n) * row.size, '\0');
  row.narrow(src, n, bytes.data());
  return bytes;
}

// An entry's integers must fit its shape and dtype, and agree with its value when both are set:
// which of the two a caller edited would otherwise be guessed.
void check_integers(const std::string& path, const Entry& entry) {
  const Integers& ints = *entry.integers;
  if (!carries_integers(entry.dtype))
    fail(path, tensor_field(entry.name, "integers"), "an integer dtype I8, I16, U16, I32, U32, I64 or U64",
         info(entry.dtype).name);
  int64_t n = 1;
  for (int64_t d : ints.shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      fail(path, tensor_field(entry.name, "integers"), "a shape of non-negative sizes", to_string(ints.shape));
  if (std::ssize(ints.values) != n)
    fail(path, tensor_field(entry.name, "integers"), concat(n, " values (shape ", to_string(ints.shape), ")"),
         concat(ints.values.size()));
  if (!entry.value.defined()) return;
  if (entry.value.shape() != ints.shape)
    fail(path, tensor_field(entry.name, "value"), "the shape of its integers " + to_string(ints.shape),
         to_string(entry.value.shape()));
  for (int64_t i = 0; i < n; ++i)
    if (entry.value.data()[i] != static_cast<float>(ints.values[i]))
      fail(path, tensor_field(entry.name, "value"),
           concat("the float32 of its integers (", ints.values[i], "; both are set: reset one to edit the other)"),
           concat(float_text(entry.value.data()[i]), " at element ", i));
}

// ---- reading ----

// nlohmann-json keeps the last of duplicate keys silently; the spec's keys must be unique, so a
// parser callback tracks the keys of every open object and refuses a repeat.
Json parse_header(std::string_view header, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;  // keys seen so far, one set per open object
  std::string entry;                                // the current top-level key, for messages
  auto refuse_duplicates = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxHeaderDepth)
      fail(path, "header", concat("JSON nested at most ", kMaxHeaderDepth, " levels deep"), "deeper nesting");
    if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == Json::parse_event_t::object_end) open_objects.pop_back();
    if (event == Json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (depth == 1) entry = key;
      if (!open_objects.back().insert(key).second) {
        const std::string subject = depth == 1              ? (key == kMetadataKey ? key : tensor_field(key, "name"))
                                    : entry == kMetadataKey ? metadata_field(key)
                                                            : tensor_field(entry, key);
        fail(path, subject, "a key that appears once", "a duplicate");
      }
    }
    return true;
  };
  try {
    return Json::parse(header.begin(), header.end(), refuse_duplicates);
  } catch (const Json::parse_error& e) {
    // e.byte counts the bytes read, so the offending byte is header byte e.byte (1-based).
    fail(path, "header", "valid JSON",
         concat("a syntax error at header byte ", e.byte, " (file offset ", 8 + e.byte - 1, "): ", e.what()));
  } catch (const Json::exception& e) {  // e.g. a number beyond double's range
    fail(path, "header", "valid JSON", e.what());
  }
}

// One header entry, validated against the byte buffer but not yet read.
struct Slot {
  std::string name;
  Dtype dtype;
  Shape shape;
  uint64_t begin, end;
};

Slot read_entry(const std::string& path, const std::string& name, const Json& entry, uint64_t buffer_size) {
  if (!entry.is_object())
    fail(path, tensor_field(name, "entry"), "an object with dtype, shape and data_offsets", describe(entry));
  for (const auto& item : entry.items())
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
      fail(path, tensor_field(name, item.key()), "only the fields dtype, shape and data_offsets", "an unknown field");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) fail(path, tensor_field(name, key), "a field", "none");

  const Json& dtype_json = entry.at("dtype");
  const std::optional<Dtype> dtype =
      dtype_json.is_string() ? dtype_from_name(dtype_json.get<std::string>()) : std::nullopt;
  if (!dtype) fail(path, tensor_field(name, "dtype"), "one of " + all_dtype_names(), describe(dtype_json));

  const Json& shape_json = entry.at("shape");
  if (!shape_json.is_array())
    fail(path, tensor_field(name, "shape"), "an array of non-negative integers", describe(shape_json));
  Shape shape;
  int64_t nonzero_product = 1;  // kept below 2^63 so Tensor's numel cannot overflow either
  bool has_zero = false;
  for (std::size_t d = 0; d < shape_json.size(); ++d) {
    const Json& dim = shape_json[d];
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})
      fail(path, tensor_field(name, concat("shape[", d, "]")), "a non-negative integer below 2^63", describe(dim));
    shape.push_back(dim.get<int64_t>());
    if (shape.back() == 0)
      has_zero = true;
    else if (__builtin_mul_overflow(nonzero_product, shape.back(), &nonzero_product))
      fail(path, tensor_field(name, "shape"), "fewer than 2^63 elements", describe(shape_json));
  }

  const Json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail(path, tensor_field(name, "data_offsets"), "[begin, end] of non-negative integers", describe(offsets));
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end) fail(path, tensor_field(name, "data_offsets"), "begin <= end", describe(offsets));
  // Checked before anything is allocated: no header can make shears allocate beyond the file.
  if (end > buffer_size)
    fail(path, tensor_field(name, "data_offsets"), concat("end <= ", buffer_size, " (the size of the byte buffer)"),
         describe(offsets));
  const uint64_t elements = has_zero ? 0 : static_cast<uint64_t>(nonzero_product), size = info(*dtype).size;
  const uint64_t span = end - begin;
  if (span % size != 0 || span / size != elements)  // division: elements × size may overflow
    fail(path, tensor_field(name, "data_offsets"),
         concat("a span of ", elements, " elements × ", size, " bytes (shape ", shape_json.dump(), ", ",
                info(*dtype).name, ")"),
         concat(span, " bytes ", offsets.dump()));
  return {name, *dtype, std::move(shape), begin, end};
}

// The spec: "The byte buffer needs to be entirely indexed, and cannot contain holes" — sorted by
// offsets, each tensor starts where the previous ends and the last ends at the end of the file.
void check_coverage(const std::string& path, std::vector<Slot>& slots, uint64_t buffer_size) {
  std::sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t next = 0;
  const Slot* previous = nullptr;
  for (const Slot& slot : slots) {
    if (slot.begin != next) {
      const std::string after = previous ? "the end of tensor '" + previous->name + "'" : "the start of the buffer";
      fail(path, tensor_field(slot.name, "data_offsets"), concat("to begin at ", next, " (", after, ")"),
           concat(slot.begin,
                  slot.begin < next ? " (overlapping)" : concat(" (a hole of ", slot.begin - next, " bytes)")));
    }
    next = slot.end;
    previous = &slot;
  }
  if (next != buffer_size)
    fail(path, "byte buffer", concat("all ", buffer_size, " bytes indexed by tensors"),
         concat(buffer_size - next, " bytes after the last tensor"));
}

// An open file descriptor, closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string limit_text(const Limits& limits) {
  return concat("at most ", limits.max_bytes,
                " bytes (safetensors::Limits::max_bytes, by default the machine's memory)");
}

std::string read_file(const std::string& path, const Limits& limits) {
  InputFile file(path, "file");
  if (static_cast<uint64_t>(file.size()) > limits.max_bytes)
    fail(path, "file size", limit_text(limits), concat(file.size(), " bytes"));
  return file.read_all();
}

// ---- writing ----

// A fresh temporary file beside path (mkostemp on "<path>.tmp.XXXXXX": concurrent writers of the
// same path each get their own), removed on scope exit unless commit() renamed it over path.
class TempFile {
 public:
  explicit TempFile(const std::string& path) : path_(path), tmp_(path + ".tmp.XXXXXX") {
    fd_ = ::mkostemp(tmp_.data(), O_CLOEXEC);
    if (fd_ < 0) fail(path_, "save", "to create a temporary file " + path + ".tmp.XXXXXX", system_error_text());
    // mkostemp creates 0600; a checkpoint is as readable as any file open(…, 0644) makes.
    if (::fchmod(fd_, 0644) != 0) fail(path_, "save", "to chmod " + tmp_, system_error_text());
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(path_, "save", "to write " + tmp_, system_error_text());
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // fsync before rename so the name never points at unwritten data; fsync the directory after,
  // so the rename itself survives a crash.
  void commit() {
    if (::fsync(fd_) != 0) fail(path_, "save", "to fsync " + tmp_, system_error_text());
    if (::close(std::exchange(fd_, -1)) != 0) fail(path_, "save", "to close " + tmp_, system_error_text());
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail(path_, "save", "to rename " + tmp_ + " over it", system_error_text());
    committed_ = true;
    std::string dir = std::filesystem::path(path_).parent_path().string();
    Fd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0)
      fail(path_, "save", "to fsync its directory after the rename (the file is in place)", system_error_text());
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

const char* dtype_name(Dtype dtype) { return info(dtype).name; }
std::size_t dtype_size(Dtype dtype) { return info(dtype).size; }

bool holds_exactly(Dtype dtype, float value) { return info(dtype).holds(value); }
bool carries_integers(Dtype dtype) { return info(dtype).widen_exact != nullptr; }

const Entry* File::find(const std::string& name) const {
  for (const Entry& entry : tensors)
    if (entry.name == name) return &entry;
  return nullptr;
}

File parse(const std::string& bytes, const std::string& path, const Limits& limits) {
  if (bytes.size() < 8) fail(path, "header length", "a file of at least 8 bytes", concat(bytes.size(), " bytes"));
  const uint64_t header_size = read_le<uint64_t>(bytes.data()), after_length = bytes.size() - 8;
  if (header_size > kMaxHeaderSize)
    fail(path, "header length", concat("at most ", kMaxHeaderSize, " bytes (the reference's MAX_HEADER_SIZE)"),
         concat(header_size, " (is this a safetensors file?)"));
  if (header_size > after_length)
    fail(path, "header length", concat("at most ", after_length, " bytes (the file size minus 8)"),
         concat(header_size, " (a truncated file?)"));
  const std::string_view header(bytes.data() + 8, header_size);
  if (header.empty() || header.front() != '{') {
    char first[8];
    std::snprintf(first, sizeof first, "0x%02X", header.empty() ? 0u : static_cast<unsigned char>(header.front()));
    fail(path, "header", "a JSON object starting with '{'",
         header.empty() ? "an empty header" : concat("first byte ", first));
  }
  const Json json = parse_header(header, path);
  SHEARS_ASSERT(json.is_object());  // it starts with '{' and parsed
  const uint64_t buffer_size = after_length - header_size;

  File file;
  std::vector<Slot> slots;
  for (const auto& item : json.items()) {
    if (item.key() != kMetadataKey) {
      slots.push_back(read_entry(path, item.key(), item.value(), buffer_size));
      continue;
    }
    if (!item.value().is_object()) fail(path, kMetadataKey, "an object of strings", describe(item.value()));
    for (const auto& meta : item.value().items()) {
      // The spec: "Arbitrary JSON is not allowed, all values must be strings."
      if (!meta.value().is_string()) fail(path, metadata_field(meta.key()), "a string", describe(meta.value()));
      file.metadata.emplace(meta.key(), meta.value().get<std::string>());
    }
  }
  check_coverage(path, slots, buffer_size);
  // Each span was checked against the buffer, so this sum cannot overflow.
  uint64_t memory = bytes.size();
  for (const Slot& slot : slots)
    memory += (slot.end - slot.begin) / info(slot.dtype).size *
              (sizeof(float) + (carries_integers(slot.dtype) ? sizeof(int64_t) : 0));
  if (memory > limits.max_bytes)
    fail(path, "tensors", concat(limit_text(limits), " for the file, its tensors as float32 and their exact integers"),
         concat(memory, " bytes"));

  const char* buffer = bytes.data() + 8 + header_size;
  file.tensors.reserve(slots.size());
  for (Slot& slot : slots) {
    Tensor value = Tensor::empty(slot.shape);
    decode(path, slot.name, slot.dtype, buffer + slot.begin, value.numel(), value.data());
    Entry entry{std::move(slot.name), std::move(value), slot.dtype};
    if (carries_integers(slot.dtype)) {
      Integers ints{std::move(slot.shape), std::vector<int64_t>(entry.value.numel())};
      if (info(slot.dtype).widen_exact(buffer + slot.begin, entry.value.numel(), ints.values.data()))
        entry.integers = std::move(ints);
    }
    file.tensors.push_back(std::move(entry));
  }
  return file;
}

File load(const std::string& path, const Limits& limits) { return parse(read_file(path, limits), path, limits); }

void save(const std::string& path, const std::vector<Entry>& tensors,
          const std::map<std::string, std::string>& metadata) {
  std::set<std::string_view> names;
  for (const Entry& entry : tensors) {
    if (entry.name == kMetadataKey)
      fail(path, tensor_field(entry.name, "name"), "a name other than __metadata__ (the spec reserves it)",
           "__metadata__");
    if (!names.insert(entry.name).second)
      fail(path, tensor_field(entry.name, "name"), "a name used once", "a duplicate");
    if (entry.integers)
      check_integers(path, entry);
    else if (!entry.value.defined())
      fail(path, tensor_field(entry.name, "value"), "a defined tensor", "an empty handle");
  }

  // The reference writer's order: descending dtype alignment, then name. Every tensor is then
  // aligned to its element size (the buffer starts 8-aligned), and the bytes match the reference.
  std::vector<const Entry*> order;
  for (const Entry& entry : tensors) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    const int ra = info(a->dtype).writer_rank, rb = info(b->dtype).writer_rank;
    return ra != rb ? ra > rb : a->name < b->name;
  });

  // Field order and compact separators as the reference's serde output.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const Entry* entry : order) {
    const uint64_t bytes = static_cast<uint64_t>(numel(shape_of(*entry))) * dtype_size(entry->dtype);
    nlohmann::ordered_json& e = header[entry->name];
    e["dtype"] = dtype_name(entry->dtype);
    e["shape"] = shape_of(*entry);
    e["data_offsets"] = {offset, offset + bytes};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // names and metadata must be UTF-8
    fail(path, "header", "UTF-8 tensor names and metadata", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // "Force alignment to 8 bytes" (tensor.rs)

  char length[8];
  write_le(length, static_cast<uint64_t>(text.size()));
  TempFile file(path);
  file.write(std::string_view(length, sizeof length));
  file.write(text);
  for (const Entry* entry : order) file.write(encode(path, *entry));
  file.commit();
}

std::vector<std::string> remove_temp_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator files(dir, ec);
  if (ec) fail(dir, "remove_temp_files", "a readable directory", ec.message());
  std::vector<std::string> removed;
  for (const fs::directory_entry& entry : files) {
    // mkostemp replaces the six X of "<path>.tmp.XXXXXX" with letters and digits.
    const std::string name = entry.path().filename().string();
    const std::size_t tmp = name.rfind(".safetensors.tmp.");
    if (tmp == std::string::npos || tmp + std::strlen(".safetensors.tmp.XXXXXX") != name.size() ||
        !entry.is_regular_file(ec) ||
        !std::all_of(name.end() - 6, name.end(), [](unsigned char ch) { return std::isalnum(ch); }))
      continue;
    if (fs::remove(entry.path(), ec); ec)
      fail(entry.path().string(), "remove_temp_files", "to remove it", ec.message());
    removed.push_back(entry.path().string());
  }
  return removed;
}

}  // namespace shears::safetensors
