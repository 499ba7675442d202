// The one translation unit that compiles stb_image (Debian's libstb-dev headers): the Makefile
// does not link libstb.so, and a second STB_IMAGE_IMPLEMENTATION would clash with this one.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "data/stb_image.hpp"

#include <cstdint>

namespace shears::data {

namespace {

// a × b × c, saturated at 2^63 − 1: a header's dimensions may be anything up to 2^32 each.
int64_t product(uint64_t a, uint64_t b, uint64_t c = 1) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b * c;
  return p > INT64_MAX ? INT64_MAX : static_cast<int64_t>(p);
}

}  // namespace

RequiredBytes stb_required_bytes(const unsigned char* data, int size) {
  stbi__context s;
  stbi__start_mem(&s, data, size);
  // Each test rewinds, but a passing PNM test; stbi__pnm_info rewinds first.
  if (stbi__png_test(&s)) return {nullptr, 0};
  int x = 0, y = 0, n = 0;
  if (stbi__bmp_test(&s)) {
    stbi__bmp_data info{};
    info.all_a = 255;
    if (stbi__bmp_parse_header(&s, &info) == nullptr) return {nullptr, 0};
    return {"BMP", product(s.img_x, s.img_y, info.bpp) / 8};
  }
  if (stbi__gif_test(&s) || stbi__psd_test(&s) || stbi__pic_test(&s) || stbi__jpeg_test(&s)) return {nullptr, 0};
  if (stbi__pnm_test(&s)) {
    const int bits = stbi__pnm_info(&s, &x, &y, &n);
    if (bits == 0 || x <= 0 || y <= 0) return {nullptr, 0};
    const int64_t header = s.img_buffer - s.img_buffer_original;  // the samples follow the maxval's one blank
    return {"PNM", header + product(x, y, n * (bits / 8))};
  }
  if (stbi__hdr_test(&s) || !stbi__tga_test(&s) || !stbi__tga_info(&s, &x, &y, &n)) return {nullptr, 0};
  // The header's image type (byte 2): 9, 10, 11 run-length encoded; bits per pixel (byte 16):
  // a pixel's, or a colour-map index's.
  const bool rle = data[2] >= 8;
  const int64_t pixels = int64_t{x} * y, value = (data[16] + 7) / 8;  // at most 2^16 × 2^16 pixels, 4 bytes
  return {"TGA", rle ? (pixels + 127) / 128 * (1 + value) : pixels * value};
}

}  // namespace shears::data
