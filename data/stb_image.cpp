// The one translation unit that compiles stb_image (Debian's libstb-dev headers): the Makefile
// does not link libstb.so, and a second STB_IMAGE_IMPLEMENTATION would clash with this one.
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
