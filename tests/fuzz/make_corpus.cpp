// Writes the seed corpora of the fuzz harnesses: `make_corpus DIR` fills DIR/<harness>/ (one
// folder per tests/fuzz/fuzz_<harness>.cpp) with small valid inputs of each format, made by
// shears' own writers where it has them. Run by `make fuzz`; the output is not committed.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "data/contract.hpp"
#include "nn/safetensors.hpp"
#include "optim/optimizer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  shears::fuzz::write_file(path, bytes.data(), bytes.size());
}

void write_gzip(const fs::path& path, const Bytes& bytes) {
  gzFile out = gzopen(path.c_str(), "wb");
  SHEARS_CHECK(out != nullptr && gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())) ==
                                     static_cast<int>(bytes.size()),
               "make_corpus", path.string(), ": cannot write");
  gzclose(out);
}

// An unsigned-byte IDX file with the given dimensions and elements 0, 1, 2, … (mod `modulo`).
Bytes idx(const std::vector<uint32_t>& dims, int modulo) {
  Bytes bytes{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  uint32_t total = 1;
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(d >> shift));
    total *= d;
  }
  for (uint32_t i = 0; i < total; ++i) bytes.push_back(static_cast<uint8_t>(i % modulo));
  return bytes;
}

void idx_seeds(const fs::path& dir) {
  write_bytes(dir / "images.idx", idx({2, 3, 3}, 256));
  write_bytes(dir / "labels.idx", idx({4}, 3));
  write_gzip(dir / "images.idx.gz", idx({2, 3, 3}, 256));
  write_gzip(dir / "labels.idx.gz", idx({4}, 3));
}

// Two records valid for CIFAR-10 (label < 10) and CIFAR-100 (coarse < 20, fine < 100) alike.
void cifar_seeds(const fs::path& dir) {
  Bytes records;
  for (uint8_t label : {3, 7}) {
    records.push_back(label);
    for (int i = 0; i < 3 * 32 * 32; ++i) records.push_back(static_cast<uint8_t>(i * label));
  }
  write_bytes(dir / "two-records.bin", records);
}

void stbi_to_file(void* context, void* data, int size) {
  auto* bytes = static_cast<Bytes*>(context);
  bytes->insert(bytes->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

void image_seeds(const fs::path& dir) {
  Bytes rgba(4 * 4 * 4);
  for (size_t i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<uint8_t>(i * 17);
  for (int channels : {1, 2, 3, 4}) {
    const std::string suffix = std::to_string(channels);
    Bytes png, bmp, tga, jpg;
    stbi_write_png_to_func(stbi_to_file, &png, 4, 4, channels, rgba.data(), 4 * channels);
    stbi_write_bmp_to_func(stbi_to_file, &bmp, 4, 4, channels, rgba.data());
    stbi_write_tga_to_func(stbi_to_file, &tga, 4, 4, channels, rgba.data());
    stbi_write_jpg_to_func(stbi_to_file, &jpg, 4, 4, channels, rgba.data(), 90);
    write_bytes(dir / ("c" + suffix + ".png"), png);
    write_bytes(dir / ("c" + suffix + ".bmp"), bmp);
    write_bytes(dir / ("c" + suffix + ".tga"), tga);
    write_bytes(dir / ("c" + suffix + ".jpg"), jpg);
  }
  Bytes pgm{'P', '5', '\n', '4', ' ', '4', '\n', '2', '5', '5', '\n'};
  pgm.insert(pgm.end(), rgba.begin(), rgba.begin() + 16);
  write_bytes(dir / "gray.pgm", pgm);
  // A 1×1 GIF89a (the classic transparent pixel).
  write_bytes(dir / "pixel.gif", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0,
                                  '!', 0xF9, 4, 1, 0, 0, 0, 0, ',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 'D', 1, 0, ';'});
}

void copy_into(const fs::path& file, const std::vector<fs::path>& dirs) {
  for (const fs::path& dir : dirs) fs::copy_file(file, dir / file.filename(), fs::copy_options::overwrite_existing);
}

void checkpoint_seeds(const fs::path& scratch, const std::vector<fs::path>& dirs) {
  auto model = shears::fuzz::small_model();
  model->save_checkpoint((scratch / "dense.safetensors").string(), {}, shears::nn::MaskFormat::dense);
  shears::Tensor mask = shears::Tensor::ones(model->named_parameters().front().second.shape());
  mask.data()[0] = 0.f;
  model->set_mask(model->named_parameters().front().first, mask);
  model->save_checkpoint((scratch / "masked.safetensors").string());
  shears::data::InputContract contract{.dataset = "image-folder",
                                       .channels = 1,
                                       .height = 4,
                                       .width = 4,
                                       .mean = {0.5f},
                                       .std = {0.25f},
                                       .classes = {"a", "b"},
                                       .resize = shears::data::EvalResize::resize_crop};
  model->save_checkpoint((scratch / "contract.safetensors").string(), shears::data::contract_metadata(contract));
  copy_into(scratch / "dense.safetensors", dirs);
  copy_into(scratch / "masked.safetensors", dirs);
  copy_into(scratch / "contract.safetensors", dirs);

  using shears::safetensors::Dtype;
  std::vector<shears::safetensors::Entry> entries;
  for (Dtype dtype : {Dtype::BOOL, Dtype::U8, Dtype::I8, Dtype::I16, Dtype::U16, Dtype::I32, Dtype::U32, Dtype::I64,
                      Dtype::U64, Dtype::F16, Dtype::BF16, Dtype::F32, Dtype::F64})
    entries.push_back({shears::safetensors::dtype_name(dtype), shears::Tensor::ones({2, 1}), dtype});
  shears::safetensors::save((scratch / "dtypes.safetensors").string(), entries, {{"note", "every dtype"}});
  copy_into(scratch / "dtypes.safetensors", dirs);
}

// Optimizer state as train saves it for --resume: SGD (momentum buffers) and Adam (moments and
// step counts) over the small model after one step.
void optimizer_seeds(const fs::path& dir) {
  auto model = shears::fuzz::small_model();
  shears::sum((*model)(shears::Tensor::ones({1, 1, 2, 2}))).backward();
  const shears::optim::NamedTensors params = model->named_parameters();
  shears::optim::Sgd sgd({{params, 0.1, 0.0, 0.1}}, {0.1, 0.9, 0.0, 0.0, false});
  shears::optim::Adam adam({{params, 0.1, 0.0, 0.1}}, {});
  for (auto [opt, name] : {std::pair<shears::optim::Optimizer*, const char*>{&sgd, "sgd"}, {&adam, "adam"}}) {
    opt->step();
    std::vector<shears::safetensors::Entry> entries;
    for (const auto& [key, t] : opt->state_dict()) entries.push_back({key, t});
    shears::safetensors::save((dir / (std::string(name) + ".safetensors")).string(), entries);
  }
}

void config_seeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> files{
      {"flat.toml", "model = \"mlp\"\nbatch-size = 64\nlr = 0.01\nsparsity = 0.9\n"},
      {"section.toml", "[train]\nsched = \"step\"\nsparsities = [0.5, 0.9]\namp = true\n# a comment\n"},
      {"dotted.ini", "train.widths = \"16,32,64\"\ntrain.lr=1e-3\n"}};
  for (const auto& [name, text] : files) write_bytes(dir / name, Bytes(text.begin(), text.end()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR (writes DIR/<harness>/ seed files)\n");
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* harness : {"safetensors", "checkpoint", "idx", "cifar", "image", "config", "optimizer"})
      fs::create_directories(out / harness);
    idx_seeds(out / "idx");
    cifar_seeds(out / "cifar");
    image_seeds(out / "image");
    checkpoint_seeds(shears::fuzz::scratch(), {out / "safetensors", out / "checkpoint"});
    config_seeds(out / "config");
    optimizer_seeds(out / "optimizer");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
