// CIFAR binary records: the input is every file of a CIFAR-10 and of a CIFAR-100 folder (symbolic
// links to one file), read by load_cifar10 and load_cifar100 (both label orders).
#include <filesystem>

#include "core/error.hpp"
#include "data/cifar.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path& input_file() {
  static const fs::path path = [] {
    const fs::path input = shears::fuzz::scratch() / "input-cifar.bin";
    for (const char* dir : {"cifar10", "cifar100"}) fs::create_directories(shears::fuzz::scratch() / dir);
    for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                             "data_batch_5.bin", "test_batch.bin"})
      fs::create_symlink(input, shears::fuzz::scratch() / "cifar10" / name);
    for (const char* name : {"train.bin", "test.bin"}) fs::create_symlink(input, shears::fuzz::scratch() / "cifar100" / name);
    return input;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shears::fuzz::write_file(input_file(), data, size);
  const std::string dir = shears::fuzz::scratch().string();
  try {
    shears::data::load_cifar10(dir + "/cifar10");
  } catch (const shears::Error&) {
  }
  for (auto labels : {shears::data::Cifar100Labels::fine, shears::data::Cifar100Labels::coarse}) {
    try {
      shears::data::load_cifar100(dir + "/cifar100", labels);
    } catch (const shears::Error&) {
    }
  }
  return 0;
}
