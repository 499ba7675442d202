// Image: one picture as float32 planes (C, H, W), row-major — the unit every transform takes and
// returns. Datasets hand out pixel values as stored (0..255 for 8-bit files); ToFloat scales them.
#pragma once
#include <cstdint>
#include <vector>

namespace shears::data {

struct Image {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> pixels;  // (C, H, W)

  Image() = default;
  Image(int64_t c, int64_t h, int64_t w, float fill = 0.f)
      : channels(c), height(h), width(w), pixels(static_cast<size_t>(c * h * w), fill) {}

  int64_t numel() const { return channels * height * width; }
  float& at(int64_t c, int64_t y, int64_t x) { return pixels[static_cast<size_t>((c * height + y) * width + x)]; }
  const float& at(int64_t c, int64_t y, int64_t x) const {
    return pixels[static_cast<size_t>((c * height + y) * width + x)];
  }
};

}  // namespace shears::data
