// Image folders laid out as torchvision's ImageFolder reads them: root/<class>/<image>, classes
// sorted by folder name (label k is the k-th), images found recursively in sorted path order.
// PNG, JPEG, BMP, TGA, GIF (first frame) and binary PNM decode through stb_image; TIFF and WebP,
// which torchvision also reads, are refused naming the file rather than skipped; files with any
// other extension are skipped and counted, as ImageFolder skips them.
//
// The images stay on disk: get() decodes one at its own size, converted to `channels`, and the
// transform resizes it (ResizeCenterCrop, RandomResizedCrop). Opening a folder reads every file's
// header (and checks what the decoder would trust), so an unreadable file fails before training
// starts, naming it. Decoded images are kept in a cache of at most cache_bytes (four bytes per
// pixel and channel), least recently used first out: memory stays bounded whatever the folder's size.
#pragma once
#include <cstdint>
#include <filesystem>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/dataset.hpp"

namespace shears::data {

struct ImageFolderOptions {
  int64_t channels = 3;  // 1 (grayscale) or 3 (RGB); alpha is dropped
  // Larger images are refused, naming the file, before they are decoded (a 613-byte JPEG claiming
  // 2^25 pixels, 8192×4096, takes 3.6 s and 0.8 GB to decode, convert and resize on 2 cores), as
  // are TGA, BMP and PNM files too short for the pixels their header claims.
  int64_t max_pixels = int64_t{1} << 25;
  int64_t cache_bytes = int64_t{256} << 20;  // decoded images kept in memory
};

class ImageFolder final : public Dataset {
 public:
  ImageFolder(std::vector<std::filesystem::path> files, std::vector<int64_t> labels, std::vector<std::string> classes,
              int64_t skipped, const ImageFolderOptions& options);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  // The image at its own size, values 0..255.
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override { return labels_.at(static_cast<size_t>(index)); }
  // {channels, 0, 0}: the sizes vary; the transform makes them one.
  Shape image_shape() const override { return {options_.channels, 0, 0}; }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t skipped() const { return skipped_; }  // files without an image extension
  int64_t cached_bytes() const {
    std::lock_guard lock(mutex_);
    return cached_bytes_;
  }
  const std::filesystem::path& file(int64_t index) const { return files_.at(static_cast<size_t>(index)); }

 private:
  std::vector<std::filesystem::path> files_;
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
  int64_t skipped_;
  ImageFolderOptions options_;
  // The cache: decoded images by index, most recently used at the front of `order_`.
  mutable std::mutex mutex_;
  mutable std::list<int64_t> order_;
  mutable std::unordered_map<int64_t, std::pair<Image, std::list<int64_t>::iterator>> cached_;
  mutable int64_t cached_bytes_ = 0;
};

// `classes`, when given (a val/ or test/ folder gets its training folder's classes(), a folder
// evaluated alone its checkpoint's), fixes the labels: every folder under root must be named in
// it and takes its index there, so a split that lacks a class keeps the others' labels.
// Otherwise the classes are root's folders, sorted.
std::shared_ptr<ImageFolder> load_image_folder(const std::string& root, const ImageFolderOptions& options = {},
                                               std::vector<std::string> classes = {});

// Unlabelled images for prediction: each path is an image file or a folder searched recursively
// (sorted as above, other files skipped and counted); every label is -1. `classes` names the
// model's outputs.
std::shared_ptr<ImageFolder> load_image_files(const std::vector<std::string>& paths, const ImageFolderOptions& options,
                                              std::vector<std::string> classes);

// One image file decoded to `channels` planes at its own size (what ImageFolder::get does).
Image decode_image_file(const std::filesystem::path& path, int64_t channels, int64_t max_pixels);

}  // namespace shears::data
