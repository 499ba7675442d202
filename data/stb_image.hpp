// What image folders ask stb_image beyond its public API; answered in stb_image.cpp, the one
// translation unit that compiles stb_image and so can call its format tests.
#pragma once
#include <cstdint>

namespace shears::data {

// The fewest bytes a file needs to hold the image its header describes, in the format stb_image
// would decode it as (the first whose test passes, in stbi__load_main's order), for the formats
// where this is known: binary PNM (the header and every sample, exactly: stb_image leaves the
// samples a short file lacks uninitialised), BMP (stb_image reads no compressed BMP: the header's
// bits per pixel for every pixel) and TGA (every pixel, or a run-length packet of at most 128
// pixels at a time). stb_image reads past the end of the other two as zeros, so a 102-byte TGA
// claiming 815×12610 pixels would be decoded in full. 0 for the formats whose compression leaves
// no useful bound (PNG, JPEG, GIF, PSD, PIC, HDR) and for anything stb_image cannot read.
struct RequiredBytes {
  const char* format;  // "PNM", "BMP", "TGA"; nullptr when bytes is 0
  int64_t bytes;
};
RequiredBytes stb_required_bytes(const unsigned char* data, int size);

}  // namespace shears::data
