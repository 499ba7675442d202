#include "data/transforms.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace shears::data {

namespace {

// Source index for output position i of a padded axis of length n, or -1 for the fill value.
int64_t pad_source(int64_t i, int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant:
      return -1;
    case PadMode::edge:
      return std::clamp<int64_t>(i, 0, n - 1);
    case PadMode::reflect:
      return i < 0 ? -i : 2 * (n - 1) - i;
  }
  return -1;
}

// One axis of PIL's separable resampling: output i reads `count` inputs from `start`, weighted.
struct Taps {
  std::vector<int64_t> start, count;
  std::vector<float> weights;  // out × width, row i holds the weights of output i
  int64_t width = 0;
};

// PIL's filters, as functions of the distance in input pixels: the triangle (bilinear, support
// 1) and Keys' cubic with a = -0.5 (bicubic, support 2).
double filter_weight(Interpolation mode, double d) {
  d = std::abs(d);
  if (mode == Interpolation::bilinear) return d < 1.0 ? 1.0 - d : 0.0;
  constexpr double a = -0.5;
  if (d < 1.0) return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
  if (d < 2.0) return (((d - 5.0) * d + 8.0) * d - 4.0) * a;
  return 0.0;
}

// PIL's precompute_coeffs for outputs first .. first + count - 1 of `out`: the filter widens by
// the shrink factor, which is the antialiasing, and is cut and renormalised at the borders.
Taps filter_taps(int64_t in, int64_t out, Interpolation mode, int64_t first, int64_t count) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = (mode == Interpolation::bilinear ? 1.0 : 2.0) * filter_scale;
  Taps taps;
  taps.width = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.weights.assign(static_cast<size_t>(count * taps.width), 0.f);
  for (int64_t j = 0; j < count; ++j) {
    const double center = (first + j + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    double total = 0.0;
    std::vector<double> w(static_cast<size_t>(hi - lo));
    for (int64_t x = lo; x < hi; ++x) {
      w[x - lo] = filter_weight(mode, (x - center + 0.5) / filter_scale);
      total += w[x - lo];
    }
    taps.start.push_back(lo);
    taps.count.push_back(hi - lo);
    for (int64_t k = 0; k < hi - lo; ++k)
      taps.weights[j * taps.width + k] = static_cast<float>(total != 0.0 ? w[k] / total : 0.0);
  }
  return taps;
}

// Mirrors each row of every channel.
void hflip_in_place(Image& image) {
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = 0; y < image.height; ++y) {
      float* row = &image.at(c, y, 0);
      std::reverse(row, row + image.width);
    }
}

}  // namespace

Image pad(const Image& image, const Padding& p, PadMode mode, float fill) {
  SHEARS_CHECK(p.left >= 0 && p.top >= 0 && p.right >= 0 && p.bottom >= 0, "pad", "padding must be non-negative, got (",
               p.left, ", ", p.top, ", ", p.right, ", ", p.bottom, ")");
  const int64_t H = image.height, W = image.width;
  SHEARS_CHECK(mode != PadMode::reflect || (std::max(p.left, p.right) < W && std::max(p.top, p.bottom) < H), "pad",
               "reflect padding must be smaller than the image: (", p.left, ", ", p.top, ", ", p.right, ", ", p.bottom,
               ") for a ", H, "x", W, " image");
  SHEARS_CHECK(mode != PadMode::edge || (H > 0 && W > 0), "pad", "edge padding of an empty image");
  Image out(image.channels, H + p.top + p.bottom, W + p.left + p.right, fill);
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = 0; y < out.height; ++y) {
      const int64_t sy = pad_source(y - p.top, H, mode);
      if (sy < 0) continue;  // a fill row
      const float* src = &image.at(c, sy, 0);
      float* dst = &out.at(c, y, 0);
      std::copy_n(src, W, dst + p.left);  // the interior; then the left and right borders
      for (auto [begin, end] : {std::pair{int64_t{0}, p.left}, std::pair{p.left + W, out.width}})
        for (int64_t x = begin; x < end; ++x) {
          const int64_t sx = pad_source(x - p.left, W, mode);
          if (sx >= 0) dst[x] = src[sx];
        }
    }
  return out;
}

Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  SHEARS_CHECK(
      top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height && left + width <= image.width,
      "crop", "window ", height, "x", width, " at (", top, ", ", left, ") does not fit in the ", image.height, "x",
      image.width, " image");
  Image out(image.channels, height, width);
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = 0; y < height; ++y) std::copy_n(&image.at(c, top + y, left), width, &out.at(c, y, 0));
  return out;
}

Image hflip(const Image& image) {
  Image out = image;
  hflip_in_place(out);
  return out;
}

namespace {

// An 8-bit image's value: the nearest whole level (halves up, as PIL's fixed point) in [0, 255].
float to_level(float v) { return std::clamp(std::floor(v + 0.5f), 0.f, 255.f); }

// The part of an image resized to height × width that a resize computes: rows top .. top + rows,
// columns left .. left + cols (each output pixel depends on its own filter taps only, so a window
// holds the same values as the whole image would, without the whole image's memory).
struct Window {
  int64_t top, left, rows, cols;
};

// Both passes of resize; `levels` rounds each pass's output to 8-bit levels, as PIL does when it
// resizes an 8-bit image (its intermediate image is 8-bit too).
Image resample(const Image& image, int64_t height, int64_t width, Interpolation mode, bool levels, Window win) {
  SHEARS_CHECK(height > 0 && width > 0, "resize", "target size must be positive, got ", height, "x", width);
  SHEARS_CHECK(image.height > 0 && image.width > 0, "resize", "cannot resize an empty ", image.height, "x", image.width,
               " image");
  Image current = image;
  if (width != image.width) {  // horizontal pass first, as PIL does
    const Taps taps = filter_taps(image.width, width, mode, win.left, win.cols);
    Image next(current.channels, current.height, win.cols);
    for (int64_t c = 0; c < current.channels; ++c)
      for (int64_t y = 0; y < current.height; ++y) {
        const float* src = &current.at(c, y, 0);
        for (int64_t x = 0; x < win.cols; ++x) {
          const float* w = &taps.weights[x * taps.width];
          float sum = 0.f;
          for (int64_t k = 0; k < taps.count[x]; ++k) sum += w[k] * src[taps.start[x] + k];
          next.at(c, y, x) = levels ? to_level(sum) : sum;
        }
      }
    current = std::move(next);
  } else if (win.cols != width) {
    current = crop(current, 0, win.left, current.height, win.cols);
  }
  if (height != image.height) {
    const Taps taps = filter_taps(image.height, height, mode, win.top, win.rows);
    Image next(current.channels, win.rows, current.width);
    for (int64_t c = 0; c < current.channels; ++c)
      for (int64_t y = 0; y < win.rows; ++y) {
        float* dst = &next.at(c, y, 0);
        const float* w = &taps.weights[y * taps.width];
        for (int64_t k = 0; k < taps.count[y]; ++k) {
          const float* src = &current.at(c, taps.start[y] + k, 0);
          for (int64_t x = 0; x < current.width; ++x) dst[x] += w[k] * src[x];
        }
        if (levels)
          for (int64_t x = 0; x < current.width; ++x) dst[x] = to_level(dst[x]);
      }
    current = std::move(next);
  } else if (win.rows != height) {
    current = crop(current, win.top, 0, win.rows, current.width);
  }
  return current;
}

}  // namespace

Image resize(const Image& image, int64_t height, int64_t width, Interpolation mode) {
  return resample(image, height, width, mode, false, {0, 0, height, width});
}

Image resize_levels(const Image& image, int64_t height, int64_t width, Interpolation mode) {
  return resample(image, height, width, mode, true, {0, 0, height, width});
}

Image center_crop(const Image& image, int64_t height, int64_t width) {
  SHEARS_CHECK(height <= image.height && width <= image.width, "center_crop", "window ", height, "x", width,
               " is larger than the ", image.height, "x", image.width, " image");
  // Python's round(), which torchvision calls: halves to even (a margin of 5 starts the window at 2).
  const auto top = static_cast<int64_t>(std::nearbyint((image.height - height) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint((image.width - width) / 2.0));
  return crop(image, top, left, height, width);
}

Interpolation parse_interpolation(const std::string& name, const std::string& what) {
  if (name == "bilinear") return Interpolation::bilinear;
  SHEARS_CHECK(name == "bicubic", what, "expected bilinear or bicubic, got '", name, "'");
  return Interpolation::bicubic;
}

const char* interpolation_name(Interpolation mode) { return mode == Interpolation::bilinear ? "bilinear" : "bicubic"; }

Image to_channels(const Image& image, int64_t channels) {
  if (image.channels == channels) return image;
  const int64_t plane = image.height * image.width;
  if (image.channels == 1 && channels == 3) {
    Image out(3, image.height, image.width);
    for (int64_t c = 0; c < 3; ++c) std::copy_n(image.pixels.begin(), plane, out.pixels.begin() + c * plane);
    return out;
  }
  SHEARS_CHECK(image.channels == 3 && channels == 1, "to_channels", "converts 1 <-> 3 channels, got ", image.channels,
               " -> ", channels);
  Image out(1, image.height, image.width);
  const float* r = image.pixels.data();
  for (int64_t k = 0; k < plane; ++k) out.pixels[k] = 0.299f * r[k] + 0.587f * r[plane + k] + 0.114f * r[2 * plane + k];
  return out;
}

Image Compose::operator()(Image image, Generator& gen) const {
  for (const Transform& t : transforms) image = t(std::move(image), gen);
  return image;
}

Image ToFloat::operator()(Image image, Generator&) const {
  for (float& v : image.pixels) v *= scale;
  return image;
}

Image Normalize::operator()(Image image, Generator&) const {
  const auto C = image.channels;
  SHEARS_CHECK(mean.size() == 1 || static_cast<int64_t>(mean.size()) == C, "Normalize", "mean has ", mean.size(),
               " values for a ", C, "-channel image");
  SHEARS_CHECK(std.size() == mean.size(), "Normalize", "mean has ", mean.size(), " values but std has ", std.size());
  const int64_t plane = image.height * image.width;
  for (int64_t c = 0; c < C; ++c) {
    const size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(c);
    SHEARS_CHECK(std[k] > 0.f, "Normalize", "std of channel ", c, " must be positive, got ", std[k]);
    float* p = image.pixels.data() + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - mean[k]) / std[k];
  }
  return image;
}

Image Pad::operator()(Image image, Generator&) const { return pad(image, padding, mode, fill); }

Image RandomCrop::operator()(Image image, Generator& gen) const {
  if (padding.any()) image = pad(image, padding, mode, fill);
  SHEARS_CHECK(height <= image.height && width <= image.width, "RandomCrop", "crop size ", height, "x", width,
               " is larger than the (padded) image, ", image.height, "x", image.width);
  // torchvision's get_params: top first, then left, each uniform over the valid positions.
  const int64_t top = gen.randint(image.height - height + 1);
  const int64_t left = gen.randint(image.width - width + 1);
  return crop(image, top, left, height, width);
}

Image RandomHorizontalFlip::operator()(Image image, Generator& gen) const {
  if (gen.uniform() < p) hflip_in_place(image);
  return image;
}

Image Resize::operator()(Image image, Generator&) const { return resize(image, height, width, interpolation); }

Image ResizeCenterCrop::operator()(Image image, Generator&) const {
  SHEARS_CHECK(crop_pct >= kMinCropPct && crop_pct <= 1.0, "ResizeCenterCrop", "crop_pct must be in [", kMinCropPct,
               ", 1], got ", crop_pct);
  const auto side = static_cast<int64_t>(std::floor(static_cast<double>(std::min(height, width)) / crop_pct));
  // The shorter side becomes `side`; the longer keeps the aspect ratio (torchvision truncates).
  const bool tall = image.height > image.width;
  const int64_t shorter = std::min(image.height, image.width), longer = std::max(image.height, image.width);
  const int64_t other = std::max<int64_t>(side * longer / shorter, side);
  const int64_t h = tall ? other : side, w = tall ? side : other;
  SHEARS_CHECK(h >= height && w >= width, "ResizeCenterCrop", "the resized ", h, "x", w, " image is smaller than the ",
               height, "x", width, " crop");
  // Python's round(), as torchvision's CenterCrop: halves to even.
  const auto top = static_cast<int64_t>(std::nearbyint((h - height) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint((w - width) / 2.0));
  if (h == image.height && w == image.width) return crop(image, top, left, height, width);
  return resample(image, h, w, interpolation, true, {top, left, height, width});
}

Image RandomResizedCrop::operator()(Image image, Generator& gen) const {
  const double area = static_cast<double>(image.height * image.width);
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_min + (scale_max - scale_min) * gen.uniform());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * gen.uniform());
    const auto w = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
    if (w > 0 && h > 0 && w <= image.width && h <= image.height) {
      const int64_t top = gen.randint(image.height - h + 1), left = gen.randint(image.width - w + 1);
      return resize_levels(crop(image, top, left, h, w), height, width, interpolation);
    }
  }
  // The fallback: the centre window whose ratio is the image's, clamped to `ratio`.
  const double in_ratio = static_cast<double>(image.width) / image.height;
  int64_t w = image.width, h = image.height;
  if (in_ratio < ratio_min) h = static_cast<int64_t>(std::lround(w / ratio_min));
  if (in_ratio > ratio_max) w = static_cast<int64_t>(std::lround(h * ratio_max));
  // torchvision's fallback window starts at (H - h) // 2, (W - w) // 2: floors, not CenterCrop's rounding.
  return resize_levels(crop(image, (image.height - h) / 2, (image.width - w) / 2, h, w), height, width, interpolation);
}

Image ToChannels::operator()(Image image, Generator&) const { return to_channels(image, channels); }

}  // namespace shears::data
