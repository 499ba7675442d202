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

// PIL's precompute_coeffs with its bilinear (triangle) filter: the filter widens by the shrink
// factor, which is the antialiasing, and is cut and renormalised at the borders.
Taps bilinear_taps(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's support is 1 input pixel, widened
  Taps taps;
  taps.width = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.weights.assign(static_cast<size_t>(out * taps.width), 0.f);
  for (int64_t i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    double total = 0.0;
    std::vector<double> w(static_cast<size_t>(hi - lo));
    for (int64_t x = lo; x < hi; ++x) {
      const double d = std::abs((x - center + 0.5) / filter_scale);
      w[x - lo] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[x - lo];
    }
    taps.start.push_back(lo);
    taps.count.push_back(hi - lo);
    for (int64_t k = 0; k < hi - lo; ++k) taps.weights[i * taps.width + k] = static_cast<float>(w[k] / total);
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

Image resize(const Image& image, int64_t height, int64_t width) {
  SHEARS_CHECK(height > 0 && width > 0, "resize", "target size must be positive, got ", height, "x", width);
  SHEARS_CHECK(image.height > 0 && image.width > 0, "resize", "cannot resize an empty ", image.height, "x", image.width,
               " image");
  Image current = image;
  if (width != image.width) {  // horizontal pass first, as PIL does
    const Taps taps = bilinear_taps(image.width, width);
    Image next(current.channels, current.height, width);
    for (int64_t c = 0; c < current.channels; ++c)
      for (int64_t y = 0; y < current.height; ++y) {
        const float* src = &current.at(c, y, 0);
        for (int64_t x = 0; x < width; ++x) {
          const float* w = &taps.weights[x * taps.width];
          float sum = 0.f;
          for (int64_t k = 0; k < taps.count[x]; ++k) sum += w[k] * src[taps.start[x] + k];
          next.at(c, y, x) = sum;
        }
      }
    current = std::move(next);
  }
  if (height != image.height) {
    const Taps taps = bilinear_taps(image.height, height);
    Image next(current.channels, height, current.width);
    for (int64_t c = 0; c < current.channels; ++c)
      for (int64_t y = 0; y < height; ++y) {
        float* dst = &next.at(c, y, 0);
        const float* w = &taps.weights[y * taps.width];
        for (int64_t k = 0; k < taps.count[y]; ++k) {
          const float* src = &current.at(c, taps.start[y] + k, 0);
          for (int64_t x = 0; x < current.width; ++x) dst[x] += w[k] * src[x];
        }
      }
    current = std::move(next);
  }
  return current;
}

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

Image Resize::operator()(Image image, Generator&) const { return resize(image, height, width); }

Image ToChannels::operator()(Image image, Generator&) const { return to_channels(image, channels); }

}  // namespace shears::data
