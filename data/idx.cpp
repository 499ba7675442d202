#include "data/idx.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "data/byte_reader.hpp"
#include "data/list_directory.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

// Far beyond any IDX set (EMNIST ByClass is ~0.6 GB), small enough that products cannot overflow.
constexpr int64_t kMaxIdxBytes = int64_t{1} << 40;

// The four files of a set, each under any prefix and raw or .gz: the names a file may end with.
// MNIST calls its test files t10k-…, EMNIST emnist-<split>-test-….
using Stems = std::vector<std::string>;
const Stems kTrainImages{"train-images-idx3-ubyte"};
const Stems kTrainLabels{"train-labels-idx1-ubyte"};
const Stems kTestImages{"t10k-images-idx3-ubyte", "test-images-idx3-ubyte"};
const Stems kTestLabels{"t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"};

std::string describe(const Stems& stems) {
  std::string s;
  for (const auto& stem : stems) s += (s.empty() ? "" : " or ") + stem + "[.gz]";
  return s;
}

std::string hex_bytes(const uint8_t* bytes, int n) {
  std::string s = "0x";
  char buf[3];
  for (int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02X", bytes[i]);
    s += buf;
  }
  return s;
}

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "not an IDX type";
  }
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

struct IdxPair {
  std::string images_path, labels_path;
  IdxArray images, labels;
};

// The classes of labels that came without names: "0" … "K-1", K = the largest training label + 1.
// Each must occur in the training labels, so that a corrupt byte (0xFF) cannot make 256 classes;
// only class 0 may be absent, named "N/A" (EMNIST Letters labels its 26 letters 1..26, and
// torchvision names its class 0 so).
std::vector<std::string> infer_classes(const IdxPair& train) {
  const std::vector<uint8_t>& labels = train.labels.data;
  bool present[256] = {};
  for (uint8_t label : labels) present[label] = true;
  SHEARS_ASSERT(!labels.empty());  // read_idx refuses a zero dimension
  const int64_t K = *std::max_element(labels.begin(), labels.end()) + 1;
  const auto first_missing = static_cast<int64_t>(std::find(present + 1, present + K, false) - present);
  if (first_missing < K) {
    const auto gap_end = static_cast<int64_t>(std::find(present + first_missing, present + K, true) - present);
    const auto record = static_cast<int64_t>(
        std::find_if(labels.begin(), labels.end(), [&](uint8_t label) { return label > first_missing; }) -
        labels.begin());
    // Labels start after the 8-byte header of a 1-dimensional IDX file.
    throw Error(detail::concat(
        "IDX: ", train.labels_path, ": label ", int{labels[record]}, " of record ", record, " (offset ", 8 + record,
        ") lies beyond labels that never occur (", first_missing, gap_end - 1 > first_missing ? ".." : "",
        gap_end - 1 > first_missing ? std::to_string(gap_end - 1) : "", "): expected the training labels to use every ",
        "class from 0 (or 1, as EMNIST Letters) up to the largest; a corrupt label byte?"));
  }
  std::vector<std::string> classes;
  for (int64_t k = 0; k < K; ++k) classes.push_back(k == 0 && !present[0] ? "N/A" : std::to_string(k));
  return classes;
}

IdxPair read_pair(const std::string& images_path, const std::string& labels_path, int64_t max_bytes) {
  IdxPair pair{images_path, labels_path, read_idx(images_path, 3, max_bytes), read_idx(labels_path, 1, max_bytes)};
  SHEARS_CHECK(pair.images.dims[0] == pair.labels.dims[0], "IDX", images_path, " holds ", pair.images.dims[0],
               " images but ", labels_path, " holds ", pair.labels.dims[0], " labels: the counts must agree");
  return pair;
}

std::shared_ptr<InMemoryDataset> to_dataset(IdxPair pair, std::vector<std::string> classes) {
  const auto K = static_cast<int64_t>(classes.size());
  std::vector<int64_t> labels(pair.labels.data.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    labels[i] = pair.labels.data[i];
    // Labels start after the 8-byte header of a 1-dimensional IDX file.
    SHEARS_CHECK(labels[i] < K, "IDX", pair.labels_path, ": label ", labels[i], " of record ", i, " (offset ", 8 + i,
                 ") is outside [0, ", K, "): expected one of ", K, " classes");
  }
  const std::vector<int64_t>& d = pair.images.dims;
  return std::make_shared<InMemoryDataset>(Shape{1, d[1], d[2]}, std::move(pair.images.data), std::move(labels),
                                           std::move(classes));
}

// Regular files in `dir` named <prefix><stem> or <prefix><stem>.gz for one of `stems`, sorted.
std::vector<std::string> find_files(const std::string& dir, const Stems& stems) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : list_directory(dir, false, "IDX", dir)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".gz")) name.resize(name.size() - 3);
    if (entry.is_regular_file(ec) &&
        std::any_of(stems.begin(), stems.end(), [&](const std::string& stem) { return name.ends_with(stem); }))
      found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string find_one(const std::string& dir, const Stems& stems) {
  std::vector<std::string> found = find_files(dir, stems);
  SHEARS_CHECK(!found.empty(), "IDX", dir, ": no file named ", describe(stems), " (a folder of IDX files holds ",
               describe(kTrainImages), ", ", describe(kTrainLabels), ", ", describe(kTestImages), " and ",
               describe(kTestLabels), ", under any prefix)");
  std::string list;
  for (const auto& f : found) list += "\n  " + f;
  SHEARS_CHECK(found.size() == 1, "IDX", dir, ": several files match ", describe(stems),
               ", keep one set per folder:", list);
  return found[0];
}

}  // namespace

IdxArray read_idx(const std::string& path, int64_t ndims, int64_t max_bytes) {
  SHEARS_CHECK(ndims >= 1 && ndims <= 255, "IDX", "an IDX file has 1 to 255 dimensions, asked for ", ndims);
  ByteReader in(path, "IDX");
  uint8_t magic[4];
  int64_t got = in.read(magic, 4);
  SHEARS_CHECK(got == 4, "IDX", path, ": the file holds ", got, " bytes, too few for the 4-byte magic number");
  uint8_t expected[4] = {0, 0, 0x08, static_cast<uint8_t>(ndims)};
  SHEARS_CHECK(magic[0] == 0 && magic[1] == 0, "IDX", path, ": not an IDX file: magic number at offset 0 is ",
               hex_bytes(magic, 4), ", expected ", hex_bytes(expected, 4));
  SHEARS_CHECK(magic[2] == 0x08, "IDX", path, ": element type ", hex_bytes(magic + 2, 1), " (", idx_type_name(magic[2]),
               ") at offset 2, expected 0x08 (unsigned byte)");
  SHEARS_CHECK(magic[3] == ndims, "IDX", path, ": ", int{magic[3]}, " dimensions at offset 3, expected ", ndims,
               ndims == 1 ? " (labels: N)" : " (images: N x H x W)");

  IdxArray array;
  int64_t total = 1;
  for (int64_t d = 0; d < ndims; ++d) {
    uint8_t b[4];
    const int64_t offset = in.offset();
    SHEARS_CHECK(in.read(b, 4) == 4, "IDX", path, ": header truncated at offset ", offset, ": expected ", ndims,
                 " dimensions of 4 bytes after the magic number");
    const int64_t size = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    SHEARS_CHECK(size > 0, "IDX", path, ": dimension ", d, " at offset ", offset, " is 0, expected a positive size");
    SHEARS_CHECK(size <= kMaxIdxBytes / total, "IDX", path, ": dimension ", d, " at offset ", offset, " (", size,
                 ") makes the data larger than ", kMaxIdxBytes, " bytes: not a real IDX header");
    total *= size;
    array.dims.push_back(size);
  }

  const int64_t header = in.offset();
  SHEARS_CHECK(total <= max_bytes, "IDX", path, ": the header's ", dims_string(array.dims), " = ", total,
               " bytes are more than the ", max_bytes, " allowed (max_bytes: by default the machine's memory)");
  // A raw file is read up to its end and then reported as truncated, naming the record; a gzipped
  // one is refused here, before inflating (and allocating) anything.
  SHEARS_CHECK(!in.gzipped() || total <= in.max_size() - header, "IDX", path, ": the header promises ",
               dims_string(array.dims), " = ", total, " bytes, but a gzip file of ", in.file_size(),
               " bytes inflates to at most ", in.max_size(), " (deflate's ratio is at most ",
               ByteReader::kMaxDeflateRatio, ":1): not a real IDX header");
  const int64_t record = total / array.dims[0];
  got = in.append(array.data, total);
  SHEARS_CHECK(got == total, "IDX", path, ": truncated: the header promises ", dims_string(array.dims), " = ", total,
               " bytes after the ", header, "-byte header, but the data ends at offset ", header + got,
               ", inside record ", got / record, " of ", array.dims[0], " (which starts at offset ",
               header + got / record * record, ")");
  SHEARS_CHECK(in.at_end(), "IDX", path, ": unexpected data after offset ", header + total, ": the header's ",
               dims_string(array.dims), " accounts for ", total, " bytes after the ", header, "-byte header");
  return array;
}

std::shared_ptr<InMemoryDataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                          std::vector<std::string> classes, int64_t max_bytes) {
  IdxPair pair = read_pair(images_path, labels_path, max_bytes);
  if (classes.empty()) classes = infer_classes(pair);
  return to_dataset(std::move(pair), std::move(classes));
}

TrainTest load_idx_folder(const std::string& dir, std::vector<std::string> classes, int64_t max_bytes) {
  std::error_code ec;
  SHEARS_CHECK(fs::is_directory(dir, ec), "IDX", dir, ": no such directory");
  // Found one after another, so a missing or ambiguous file is reported in this order.
  const std::string train_images = find_one(dir, kTrainImages), train_labels = find_one(dir, kTrainLabels);
  const std::string test_images = find_one(dir, kTestImages), test_labels = find_one(dir, kTestLabels);
  IdxPair train = read_pair(train_images, train_labels, max_bytes);
  IdxPair test = read_pair(test_images, test_labels, max_bytes);
  const auto& a = train.images.dims;
  const auto& b = test.images.dims;
  SHEARS_CHECK(a[1] == b[1] && a[2] == b[2], "IDX", dir, ": train images are ", a[1], "x", a[2], " (",
               train.images_path, ") but test images are ", b[1], "x", b[2], " (", test.images_path, ")");
  if (classes.empty()) classes = infer_classes(train);
  return {to_dataset(std::move(train), classes), to_dataset(std::move(test), classes)};
}

bool has_idx_files(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && !find_files(dir, kTrainImages).empty();
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> classes{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return classes;
}

TrainTest load_fashion_mnist(const std::string& dir) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(dir, ec);
  std::string missing;
  for (const Stems* stems : {&kTrainImages, &kTrainLabels, &kTestImages, &kTestLabels})
    if (!is_dir || find_files(dir, *stems).empty()) missing += (missing.empty() ? "" : ", ") + describe(*stems);
  SHEARS_CHECK(missing.empty(), "Fashion-MNIST", "not found: searched ", dir, " for ", missing,
               ". Run `make deps` (it installs the Debian package dataset-fashion-mnist into ", kFashionMnistDir,
               ") or point at a directory holding the four IDX files");
  return load_idx_folder(dir, fashion_mnist_classes());
}

}  // namespace shears::data
