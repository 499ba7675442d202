// Image decoding as image folders do it (load_image_folder's checks, stb_image through get(), then
// the evaluation resize): the input is the one image of a one-class folder; an odd-sized input
// loads it as grayscale.
#include <filesystem>

#include "core/error.hpp"
#include "data/image_folder.hpp"
#include "data/transforms.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path root = [] {
    const auto dir = shears::fuzz::scratch() / "images";
    std::filesystem::create_directories(dir / "class");
    return dir;
  }();
  shears::fuzz::write_file(root / "class" / "input.png", data, size);
  shears::data::ImageFolderOptions options;
  options.channels = size % 2 ? 1 : 3;
  // The default cap lets a tiny JPEG or GIF claim 2^25 pixels, which stb_image then decodes in
  // full, over a minute under the sanitizers: fuzz below a quarter of the harness's time-out.
  options.max_pixels = int64_t{1} << 20;
  try {
    auto folder = shears::data::load_image_folder(root.string(), options);
    shears::Generator gen(0);
    shears::data::ResizeCenterCrop{8, 8}(folder->get(0).image, gen);
  } catch (const shears::Error&) {
  }
  return 0;
}
