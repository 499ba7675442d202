#include "data/cifar.hpp"

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/file.hpp"
#include "data/byte_reader.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixels = 3 * 32 * 32;

struct LabelByte {
  const char* name;
  int64_t num_classes;  // the byte must be in [0, num_classes)
};

struct Format {
  const char* name;                    // for errors
  const char* subdir;                  // what the official archive unpacks into
  std::vector<LabelByte> label_bytes;  // the bytes before each record's pixels
  size_t kept;                         // which label byte becomes the sample's label
  const char* names_file;              // class names of the kept label, one a line

  int64_t num_classes() const { return label_bytes[kept].num_classes; }
  int64_t record_bytes() const { return static_cast<int64_t>(label_bytes.size()) + kPixels; }
};

// The folder holding `probe`: dir itself, or dir/<subdir> as the archive unpacks; "" if neither.
std::string find_folder(const std::string& dir, const char* subdir, const char* probe) {
  std::error_code ec;
  for (const fs::path& candidate : {fs::path(dir), fs::path(dir) / subdir})
    if (fs::is_regular_file(candidate / probe, ec)) return candidate.string();
  return "";
}

std::vector<std::string> class_names(const std::string& folder, const Format& format) {
  const fs::path path = fs::path(folder) / format.names_file;
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    for (int64_t k = 0; k < format.num_classes(); ++k) names.push_back(std::to_string(k));
    return names;
  }
  std::istringstream in(read_input_file(path.string(), std::string(format.name) + " class names", int64_t{1} << 20));
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  SHEARS_CHECK(static_cast<int64_t>(names.size()) == format.num_classes(), format.name, path.string(), ": expected ",
               format.num_classes(), " class names, one a line, got ", names.size());
  return names;
}

// Appends the records of one file to pixels/labels.
void read_records(const std::string& path, const Format& format, int64_t max_bytes, std::vector<uint8_t>& pixels,
                  std::vector<int64_t>& labels) {
  ByteReader in(path, format.name);
  const int64_t record_bytes = format.record_bytes();
  std::vector<uint8_t> record(record_bytes);
  for (int64_t r = 0;; ++r) {
    const int64_t offset = in.offset();
    const int64_t got = in.read(record.data(), record_bytes);
    if (got == 0) {
      SHEARS_CHECK(r > 0, format.name, path, ": the file is empty, expected records of ", record_bytes, " bytes");
      return;
    }
    SHEARS_CHECK(got == record_bytes, format.name, path, ": truncated: record ", r, " at offset ", offset, " has ", got,
                 " of its ", record_bytes, " bytes (", format.label_bytes.size(),
                 " label byte(s) then 3072 pixel bytes)");
    for (size_t b = 0; b < format.label_bytes.size(); ++b) {
      const LabelByte& label = format.label_bytes[b];
      SHEARS_CHECK(record[b] < label.num_classes, format.name, path, ": record ", r, " at offset ", offset, ": ",
                   label.name, " ", int{record[b]}, " at offset ", offset + static_cast<int64_t>(b), ", expected 0..",
                   label.num_classes - 1);
    }
    SHEARS_CHECK(static_cast<int64_t>(pixels.size()) + kPixels <= max_bytes, format.name, path, ": record ", r,
                 " at offset ", offset, " would take the pixels read past the ", max_bytes,
                 " bytes allowed (max_bytes: by default the machine's memory)");
    labels.push_back(record[format.kept]);
    pixels.insert(pixels.end(), record.begin() + static_cast<int64_t>(format.label_bytes.size()), record.end());
  }
}

std::shared_ptr<InMemoryDataset> load_files(const std::string& folder, const std::vector<std::string>& files,
                                            const Format& format, const std::vector<std::string>& classes,
                                            int64_t max_bytes) {
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (const auto& file : files) read_records((fs::path(folder) / file).string(), format, max_bytes, pixels, labels);
  return std::make_shared<InMemoryDataset>(Shape{3, 32, 32}, std::move(pixels), std::move(labels), classes);
}

TrainTest load(const std::string& dir, const Format& format, const std::vector<std::string>& train_files,
               const std::string& test_file, int64_t max_bytes) {
  const std::string folder = find_folder(dir, format.subdir, train_files[0].c_str());
  SHEARS_CHECK(!folder.empty(), format.name, train_files[0], " not found in ", dir, " or ",
               (fs::path(dir) / format.subdir).string(), ": expected the binary version of ", format.name);
  const std::vector<std::string> classes = class_names(folder, format);
  return {load_files(folder, train_files, format, classes, max_bytes),
          load_files(folder, {test_file}, format, classes, max_bytes)};
}

constexpr const char* kCifar10Dir = "cifar-10-batches-bin";
constexpr const char* kCifar100Dir = "cifar-100-binary";

}  // namespace

TrainTest load_cifar10(const std::string& dir, int64_t max_bytes) {
  static const Format format{"CIFAR-10", kCifar10Dir, {{"label", 10}}, 0, "batches.meta.txt"};
  return load(dir, format,
              {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
              "test_batch.bin", max_bytes);
}

TrainTest load_cifar100(const std::string& dir, Cifar100Labels labels, int64_t max_bytes) {
  // Both bytes are checked whichever is kept: a bad one means a corrupt record.
  static const std::vector<LabelByte> bytes{{"coarse label", 20}, {"fine label", 100}};
  static const Format fine{"CIFAR-100", kCifar100Dir, bytes, 1, "fine_label_names.txt"};
  static const Format coarse{"CIFAR-100", kCifar100Dir, bytes, 0, "coarse_label_names.txt"};
  return load(dir, labels == Cifar100Labels::fine ? fine : coarse, {"train.bin"}, "test.bin", max_bytes);
}

bool has_cifar10_files(const std::string& dir) { return !find_folder(dir, kCifar10Dir, "data_batch_1.bin").empty(); }
bool has_cifar100_files(const std::string& dir) { return !find_folder(dir, kCifar100Dir, "train.bin").empty(); }

}  // namespace shears::data
