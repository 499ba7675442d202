// Image folders laid out as torchvision's ImageFolder reads them: root/<class>/<image>, classes
// sorted by folder name (label k is the k-th), images found recursively in sorted path order.
// PNG, JPEG, BMP, TGA, GIF (first frame) and PNM decode through stb_image; every image is
// converted to `channels` and resized to height × width once, at load time, so an unreadable
// file fails before training starts, naming it.
#pragma once
#include <cstdint>
#include <string>

#include "data/dataset.hpp"

namespace shears::data {

struct ImageFolderOptions {
  int64_t channels = 3;  // 1 (grayscale) or 3 (RGB); alpha is dropped
  int64_t height = 32, width = 32;
};

std::shared_ptr<InMemoryDataset> load_image_folder(const std::string& root, const ImageFolderOptions& options = {});

}  // namespace shears::data
