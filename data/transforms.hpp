// Transforms, after torchvision.transforms: each takes an Image and the sample's Generator and
// returns the new Image; Compose chains them. Random ones draw only from that generator, which
// the loader derives from (seed, epoch, sample index), so one seed reproduces every augmentation.
// Functional forms (pad, crop, hflip, resize, to_channels) are exact and draw nothing.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "data/image.hpp"

namespace shears::data {

using Transform = std::function<Image(Image, Generator&)>;

// Pixels added on each side, in torchvision's order: one value for all sides, (left/right,
// top/bottom), or (left, top, right, bottom).
struct Padding {
  int64_t left = 0, top = 0, right = 0, bottom = 0;
  // Implicit, so that RandomCrop(32, 4) reads as torchvision's RandomCrop(32, padding=4).
  Padding(int64_t all = 0) : left(all), top(all), right(all), bottom(all) {}
  Padding(int64_t horizontal, int64_t vertical)
      : left(horizontal), top(vertical), right(horizontal), bottom(vertical) {}
  Padding(int64_t l, int64_t t, int64_t r, int64_t b) : left(l), top(t), right(r), bottom(b) {}
  bool any() const { return left || top || right || bottom; }
};

// torchvision's padding_mode, shown padding 1 2 3 by two on each side:
//   constant  f f | 1 2 3 | f f      edge  1 1 | 1 2 3 | 3 3      reflect  3 2 | 1 2 3 | 2 1
enum class PadMode { constant, edge, reflect };

Image pad(const Image& image, const Padding& padding, PadMode mode = PadMode::constant, float fill = 0.f);
// The window of height × width whose top-left corner is (top, left); it must lie inside the image.
Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width);
Image hflip(const Image& image);
// PIL's resampling filters (torchvision's InterpolationMode), both antialiased when shrinking.
enum class Interpolation { bilinear, bicubic };
// "bilinear" or "bicubic"; anything else is refused naming `what` (a flag or a metadata key).
Interpolation parse_interpolation(const std::string& name, const std::string& what);
const char* interpolation_name(Interpolation mode);

// Separable resampling with antialiasing when shrinking (PIL's BILINEAR or BICUBIC filter, which
// torchvision uses for PIL images and for tensors with antialias=True): bilinear growing is
// exactly interpolate(mode="bilinear", align_corners=False).
Image resize(const Image& image, int64_t height, int64_t width, Interpolation mode = Interpolation::bilinear);
// The same as PIL resizes an 8-bit image: each pass's output rounded to whole levels in [0, 255]
// (halves up), the intermediate image included. For values 0..255 (decoded pixels).
Image resize_levels(const Image& image, int64_t height, int64_t width, Interpolation mode = Interpolation::bilinear);
// The window of height × width at the centre, torchvision's CenterCrop (top = round((H - h) / 2),
// halves to even as Python rounds).
Image center_crop(const Image& image, int64_t height, int64_t width);
// 1 → 3 repeats the plane; 3 → 1 takes the ITU-R 601-2 luma (PIL's "L": 0.299 R + 0.587 G + 0.114 B).
Image to_channels(const Image& image, int64_t channels);

struct Compose {
  std::vector<Transform> transforms;
  Image operator()(Image image, Generator& gen) const;
};

// Multiplies every value by `scale`: bytes 0..255 become floats in [0, 1] (torchvision ToTensor).
struct ToFloat {
  float scale = 1.f / 255.f;
  Image operator()(Image image, Generator&) const;
};

// (x − mean[c]) / std[c] per channel; one value applies to every channel.
struct Normalize {
  std::vector<float> mean, std;
  Image operator()(Image image, Generator&) const;
};

struct Pad {
  Padding padding;
  PadMode mode = PadMode::constant;
  float fill = 0.f;
  Image operator()(Image image, Generator&) const;
};

// Pads, then crops a height × width window at a uniformly random position.
struct RandomCrop {
  int64_t height, width;
  Padding padding;
  PadMode mode;
  float fill;
  RandomCrop(int64_t size, Padding padding = {}, PadMode mode = PadMode::constant, float fill = 0.f)
      : RandomCrop(size, size, padding, mode, fill) {}
  RandomCrop(int64_t height, int64_t width, Padding padding, PadMode mode = PadMode::constant, float fill = 0.f)
      : height(height), width(width), padding(padding), mode(mode), fill(fill) {}
  Image operator()(Image image, Generator& gen) const;
};

// Mirrors left-right with probability p.
struct RandomHorizontalFlip {
  float p = 0.5f;
  Image operator()(Image image, Generator& gen) const;
};

struct Resize {
  int64_t height, width;
  Interpolation interpolation = Interpolation::bilinear;
  Image operator()(Image image, Generator&) const;
};

// The evaluation view of a photo, as timm builds it: the shorter side resized to
// floor(min(height, width) / crop_pct) keeping the aspect ratio, then the centre height × width.
// Resized as PIL resizes an 8-bit image (resize_levels).
// The smallest crop_pct accepted: the resize side is at most 100 times the crop's.
inline constexpr double kMinCropPct = 0.01;
struct ResizeCenterCrop {
  int64_t height, width;
  double crop_pct = 0.875;
  Interpolation interpolation = Interpolation::bilinear;
  Image operator()(Image image, Generator&) const;
};

// torchvision's RandomResizedCrop: a window of random area (a `scale` fraction of the image's)
// and aspect ratio (log-uniform in `ratio`), resized to height × width; after ten misses, the
// centre window of the clamped ratio. Resized with resize_levels, as ResizeCenterCrop.
struct RandomResizedCrop {
  int64_t height, width;
  double scale_min = 0.08, scale_max = 1.0, ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  Interpolation interpolation = Interpolation::bilinear;
  Image operator()(Image image, Generator& gen) const;
};

struct ToChannels {
  int64_t channels;
  Image operator()(Image image, Generator&) const;
};

}  // namespace shears::data
