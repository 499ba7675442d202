#include "data/image_folder.hpp"

#include <stb/stb_image.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "core/file.hpp"
#include "data/list_directory.hpp"
#include "data/stb_image.hpp"
#include "data/transforms.hpp"

namespace shears::data {

namespace {

namespace fs = std::filesystem;

constexpr const char* kExtensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".gif", ".ppm", ".pgm", ".pnm"};
// Extensions torchvision's ImageFolder accepts (through PIL) that stb_image cannot decode.
constexpr const char* kUndecodable[] = {".tif", ".tiff", ".webp"};

std::string extension_list() {
  std::string list;
  for (const char* e : kExtensions) list += std::string(list.empty() ? "" : " ") + e;
  return list;
}

bool one_of(const std::string& ext, const auto& extensions) {
  return std::any_of(std::begin(extensions), std::end(extensions), [&](const char* e) { return ext == e; });
}

// Whether `entry` is an image file to load; a TIFF or WebP file, which torchvision would load and
// we cannot, throws rather than being skipped. Other files count in `skipped`.
bool is_image_file(const fs::directory_entry& entry, int64_t& skipped) {
  std::error_code ec;
  if (!entry.is_regular_file(ec)) return false;
  std::string ext = entry.path().extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  SHEARS_CHECK(!one_of(ext, kUndecodable), "image folder", entry.path().string(),
               ": TIFF and WebP images cannot be decoded here (stb_image reads ", extension_list(),
               "): convert them, e.g. to PNG");
  const bool image = one_of(ext, kExtensions);
  skipped += !image;
  return image;
}

// Image files under `dir`, in os.walk order sorted as torchvision does: by folder, then by name.
// `folders` and `files` hold what earlier classes reached: a folder or an image reached a second
// time (through a symlink or a hard link) is refused, so no image is read twice or under two labels.
std::vector<fs::path> images_under(const fs::path& dir, const std::string& root, FileIds& folders, FileIds& files,
                                   int64_t& skipped) {
  std::vector<std::pair<std::string, std::string>> found;
  for (const auto& entry : list_directory(dir, "image folder", root, folders)) {
    if (!is_image_file(entry, skipped)) continue;
    const auto [first, fresh] = files.emplace(file_id(entry.path(), "image folder", root), entry.path());
    SHEARS_CHECK(fresh, "image folder", root, ": ", entry.path().string(), " and ", first->second.string(),
                 " are the same file (a link): each image is read once");
    found.emplace_back(entry.path().parent_path().string(), entry.path().filename().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (const auto& [folder, name] : found) paths.push_back(fs::path(folder) / name);
  return paths;
}

std::string class_list(const std::vector<std::string>& classes) {
  std::string list;
  for (const auto& c : classes) list += (list.empty() ? "'" : ", '") + c + "'";
  return list;
}

// Debian's stb_image (git 2022-09-08) builds a JPEG Huffman table without checking that its 16
// code counts sum to at most 256, and writes past the table's arrays when they do not (fixed
// upstream later). Such tables are refused here, before stb_image parses any marker: every DHT
// segment is walked, skipping the entropy-coded data after each SOS (progressive JPEGs define
// tables between scans). Bytes past the end read as 0, as stb_image reads them, and fill bytes
// (0xFF) may come before the SOI marker as before any other.
void check_jpeg_huffman_tables(const std::string& bytes, const std::string& name) {
  const auto byte = [&](size_t i) { return i < bytes.size() ? static_cast<uint8_t>(bytes[i]) : uint8_t{0}; };
  if (byte(0) != 0xFF) return;  // not a JPEG
  size_t pos = 1;
  while (pos < bytes.size() && byte(pos) == 0xFF) ++pos;
  if (byte(pos++) != 0xD8) return;  // not a JPEG
  while (pos + 1 < bytes.size()) {
    if (byte(pos) != 0xFF) {  // entropy-coded data: skip to the next marker (not FF00, not RSTn)
      ++pos;
      continue;
    }
    const uint8_t marker = byte(pos + 1);
    if (marker == 0xFF || marker == 0x00 || (marker >= 0xD0 && marker <= 0xD8) || marker == 0x01) {
      pos += marker == 0xFF ? 1 : 2;  // fill byte, stuffed zero, RSTn, SOI, TEM: no length
      continue;
    }
    if (marker == 0xD9) return;  // EOI
    const size_t end = pos + 2 + (size_t{byte(pos + 2)} << 8 | byte(pos + 3));
    if (marker == 0xC4)  // DHT: tables of (class/id byte, 16 counts, the counted symbols)
      for (size_t table = pos + 4; table < end;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(table + i);
        SHEARS_CHECK(codes <= 256, "image folder", name, ": corrupt JPEG: a Huffman table at offset ", table,
                     " has ", codes, " codes, at most 256 allowed");
        table += 17 + codes;
      }
    pos = end;
  }
}

// The same stb_image reads a binary PNM header's width, height and maxval into an int with no
// overflow check (UBSan: signed integer overflow in stbi__pnm_getinteger; fixed upstream later).
// The header is walked here first as stbi__pnm_info walks it, and a number beyond 2^24 refused:
// stb_image allows no side beyond 2^24 and no maxval beyond 65535 anyway.
void check_pnm_header(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return;
  constexpr int64_t kMaxNumber = int64_t{1} << 24;
  size_t pos = 2;
  const auto at_end = [&] { return pos >= bytes.size(); };
  const auto next = [&] { return at_end() ? '\0' : bytes[pos++]; };  // past the end: 0, as stb_image
  const auto blank = [](char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
  };
  char c = next();
  for (const char* field : {"width", "height", "maxval"}) {
    for (;;) {  // blanks and # comments
      while (!at_end() && blank(c)) c = next();
      if (at_end() || c != '#') break;
      while (!at_end() && c != '\n' && c != '\r') c = next();
    }
    const size_t start = pos - 1;  // c's offset
    for (int64_t value = 0; !at_end() && c >= '0' && c <= '9'; c = next()) {
      value = value * 10 + (c - '0');
      SHEARS_CHECK(value <= kMaxNumber, "image folder", name, ": corrupt PNM header: the ", field, " at offset ",
                   start, " is more than ", kMaxNumber);
    }
  }
}

// The same stb_image trusts a PNG chunk's length: an IDAT claiming 2 GB makes it grow its buffer
// to that size before it finds the file too short, and an empty first IDAT is copied into a
// null pointer (UBSan: null pointer passed to memcpy). The chunks are walked first (length, type,
// data, CRC) up to IEND: each must fit in the file, and the first IDAT must hold data.
void check_png_chunks(const std::string& bytes, const std::string& name) {
  static const char kSignature[] = "\x89PNG\r\n\x1a\n";
  if (bytes.compare(0, 8, kSignature, 8) != 0) return;
  bool seen_idat = false;
  for (size_t pos = 8; pos < bytes.size();) {
    SHEARS_CHECK(pos + 12 <= bytes.size(), "image folder", name, ": corrupt PNG: a chunk at offset ", pos,
                 " is cut short (", bytes.size() - pos, " bytes left, a chunk takes at least 12)");
    uint64_t length = 0;
    for (int b = 0; b < 4; ++b) length = length << 8 | static_cast<uint8_t>(bytes[pos + b]);
    SHEARS_CHECK(length <= bytes.size() - pos - 12, "image folder", name, ": corrupt PNG: the chunk at offset ", pos,
                 " claims ", length, " bytes of data, the file has ", bytes.size() - pos - 12, " after its header");
    const std::string type = bytes.substr(pos + 4, 4);
    if (type == "IDAT" && !seen_idat) {
      SHEARS_CHECK(length > 0, "image folder", name, ": corrupt PNG: the first IDAT chunk, at offset ", pos,
                   ", is empty");
      seen_idat = true;
    }
    if (type == "IEND") return;
    pos += 12 + static_cast<size_t>(length);
  }
}

struct Header {
  int width = 0, height = 0, channels = 0;
};

// What the decoder would trust in `bytes`, checked; the file's size and channels.
Header inspect(const std::string& bytes, const std::string& name, int64_t channels, int64_t max_pixels) {
  check_jpeg_huffman_tables(bytes, name);
  check_pnm_header(bytes, name);
  check_png_chunks(bytes, name);
  const auto* encoded = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = static_cast<int>(bytes.size());
  Header h;
  SHEARS_CHECK(stbi_info_from_memory(encoded, size, &h.width, &h.height, &h.channels), "image folder", name,
               ": not a readable image (stb_image: ", stbi_failure_reason(), ")");
  SHEARS_CHECK(h.width > 0 && h.height > 0, "image folder", name, ": corrupt header: ", h.width, "x", h.height,
               " pixels");
  const int64_t pixels = int64_t{h.width} * h.height;
  SHEARS_CHECK(pixels <= max_pixels, "image folder", name, ": ", h.width, "x", h.height, " = ", pixels,
               " pixels, more than the ", max_pixels, " allowed (ImageFolderOptions::max_pixels, --max-image-pixels)");
  const RequiredBytes required = stb_required_bytes(encoded, size);
  SHEARS_CHECK(size >= required.bytes, "image folder", name, ": a ", required.format, " image of ", h.width, "x",
               h.height, " pixels needs at least ", required.bytes, " bytes, the file has ", size,
               ": truncated or corrupt");
  // The same stb_image converts a 16-bit PNM's channels with its 8-bit routine and reads past the
  // pixels (also fixed upstream later), so those files load only with their own channel count.
  const bool pnm = bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6');
  SHEARS_CHECK(!pnm || h.channels == channels || !stbi_is_16_bit_from_memory(encoded, size), "image folder", name,
               ": a 16-bit PNM image of ", h.channels, " channel(s) cannot be converted to ", channels,
               " here: convert it to 8 bits or to PNG");
  return h;
}

// (At most INT_MAX bytes: stb_image reads no more.)
std::string read_image_bytes(const fs::path& path) { return read_input_file(path.string(), "image", INT_MAX); }

}  // namespace

Image decode_image_file(const fs::path& path, int64_t channels, int64_t max_pixels) {
  const std::string name = path.string(), bytes = read_image_bytes(path);
  Header h = inspect(bytes, name, channels, max_pixels);
  int w = 0, height = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &height,
                            &n, static_cast<int>(channels)),
      stbi_image_free);
  SHEARS_CHECK(data != nullptr, "image folder", name, ": cannot decode (stb_image: ", stbi_failure_reason(), ")");
  SHEARS_CHECK(w == h.width && height == h.height, "image folder", name, ": the header says ", h.width, "x", h.height,
               ", the decoder gave ", w, "x", height);
  Image image(channels, height, w);
  const stbi_uc* src = data.get();  // (H, W, C) interleaved
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < channels; ++c) image.at(c, y, x) = src[(y * w + x) * channels + c];
  return image;
}

ImageFolder::ImageFolder(std::vector<fs::path> files, std::vector<int64_t> labels, std::vector<std::string> classes,
                         int64_t skipped, const ImageFolderOptions& options)
    : files_(std::move(files)),
      labels_(std::move(labels)),
      classes_(std::move(classes)),
      skipped_(skipped),
      options_(options) {
  SHEARS_ASSERT(files_.size() == labels_.size());
}

Sample ImageFolder::get(int64_t index) const {
  SHEARS_CHECK(index >= 0 && index < size(), "image folder", "index ", index, " out of range [0, ", size(), ")");
  {
    std::lock_guard lock(mutex_);
    auto it = cached_.find(index);
    if (it != cached_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return {it->second.first, labels_[index]};
    }
  }
  Image image = decode_image_file(files_[index], options_.channels, options_.max_pixels);
  const auto bytes = static_cast<int64_t>(image.numel() * sizeof(float));
  std::lock_guard lock(mutex_);
  if (bytes <= options_.cache_bytes && !cached_.count(index)) {
    while (cached_bytes_ + bytes > options_.cache_bytes) {  // least recently used out
      auto last = cached_.find(order_.back());
      cached_bytes_ -= static_cast<int64_t>(last->second.first.numel() * sizeof(float));
      cached_.erase(last);
      order_.pop_back();
    }
    order_.push_front(index);
    cached_.emplace(index, std::make_pair(image, order_.begin()));
    cached_bytes_ += bytes;
  }
  return {std::move(image), labels_[index]};
}

std::shared_ptr<ImageFolder> load_image_folder(const std::string& root, const ImageFolderOptions& options,
                                               std::vector<std::string> classes) {
  SHEARS_CHECK(options.channels == 1 || options.channels == 3, "image folder", "channels must be 1 or 3, got ",
               options.channels);
  SHEARS_CHECK(options.max_pixels > 0, "image folder", "max_pixels must be positive, got ", options.max_pixels);
  SHEARS_CHECK(options.cache_bytes >= 0, "image folder", "cache_bytes must be at least 0, got ", options.cache_bytes);
  std::error_code ec;
  SHEARS_CHECK(fs::is_directory(root, ec), "image folder", root, ": no such directory");

  std::vector<std::string> folders;
  for (const auto& entry : list_directory(root, false, "image folder", root))
    if (entry.is_directory(ec)) folders.push_back(entry.path().filename().string());
  std::sort(folders.begin(), folders.end());
  SHEARS_CHECK(!folders.empty(), "image folder", root,
               ": no class folders, expected root/<class>/<image> (one folder per class)");
  if (classes.empty()) classes = folders;

  std::vector<fs::path> paths;
  std::vector<int64_t> labels;
  int64_t skipped = 0;
  FileIds folders_read{{file_id(root, "image folder", root), root}}, files_read;
  for (const std::string& name : folders) {
    const fs::path folder = fs::path(root) / name;
    const auto known = std::find(classes.begin(), classes.end(), name);
    SHEARS_CHECK(known != classes.end(), "image folder", folder.string(), ": class '", name, "' is not one of the ",
                 classes.size(), " classes the labels follow (", class_list(classes),
                 "): a split may leave classes out but not add any");
    const std::vector<fs::path> files = images_under(folder, root, folders_read, files_read, skipped);
    SHEARS_CHECK(!files.empty(), "image folder", folder.string(), ": class '", name, "' has no images (looked for ",
                 extension_list(), ")");
    for (const fs::path& file : files) {
      inspect(read_image_bytes(file), file.string(), options.channels, options.max_pixels);
      paths.push_back(file);
      labels.push_back(known - classes.begin());
    }
  }
  return std::make_shared<ImageFolder>(std::move(paths), std::move(labels), std::move(classes), skipped, options);
}

std::shared_ptr<ImageFolder> load_image_files(const std::vector<std::string>& paths, const ImageFolderOptions& options,
                                              std::vector<std::string> classes) {
  SHEARS_CHECK(options.channels == 1 || options.channels == 3, "image files", "channels must be 1 or 3, got ",
               options.channels);
  std::vector<fs::path> files;
  int64_t skipped = 0;
  FileIds folders_read, files_read;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      for (const fs::path& file : images_under(path, path, folders_read, files_read, skipped)) files.push_back(file);
      continue;
    }
    struct stat st {};
    SHEARS_CHECK(::stat(path.c_str(), &st) == 0, "image files", path, ": no such file or folder");
    SHEARS_CHECK(S_ISREG(st.st_mode), "image files", path, ": expected an image file or a folder, got ",
                 file_kind(st.st_mode));
    SHEARS_CHECK(is_image_file(fs::directory_entry(path), skipped), "image files", path,
                 ": not an image file (looked for ", extension_list(), ")");
    files.push_back(path);
  }
  SHEARS_CHECK(!files.empty(), "image files", "no images found in the ", paths.size(), " path(s) given (looked for ",
               extension_list(), ")");
  for (const fs::path& file : files)
    inspect(read_image_bytes(file), file.string(), options.channels, options.max_pixels);
  std::vector<int64_t> labels(files.size(), -1);
  return std::make_shared<ImageFolder>(std::move(files), std::move(labels), std::move(classes), skipped, options);
}

}  // namespace shears::data
