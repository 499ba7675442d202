// Image folders laid out as torchvision's ImageFolder reads them: root/<class>/<image>, classes
// sorted by folder name (label k is the k-th), images found recursively in sorted path order.
// PNG, JPEG, BMP, TGA, GIF (first frame) and binary PNM decode through stb_image; TIFF and WebP,
// which torchvision also reads, are refused naming the file rather than skipped. Every image is
// converted to `channels` and resized to height × width once, at load time, so an unreadable
// file fails before training starts, naming it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace shears::data {

struct ImageFolderOptions {
  int64_t channels = 3;  // 1 (grayscale) or 3 (RGB); alpha is dropped
  int64_t height = 32, width = 32;
  // Larger images are refused, naming the file, before they are decoded (a 613-byte JPEG claiming
  // 2^25 pixels, 8192×4096, takes 3.6 s and 0.8 GB to decode, convert and resize on 2 cores), as
  // are TGA, BMP and PNM files too short for the pixels their header claims.
  int64_t max_pixels = int64_t{1} << 25;
};

// `classes`, when given (a val/ or test/ folder gets its training folder's classes()), fixes the
// labels: every folder under root must be named in it and takes its index there, so a split that
// lacks a class keeps the others' labels. Otherwise the classes are root's folders, sorted.
std::shared_ptr<InMemoryDataset> load_image_folder(const std::string& root, const ImageFolderOptions& options = {},
                                                   std::vector<std::string> classes = {});

}  // namespace shears::data
