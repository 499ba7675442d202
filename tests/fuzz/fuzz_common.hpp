// What the libFuzzer harnesses (fuzz_<reader>.cpp, `make fuzz`) share. Every reader takes a path,
// so each input is written to a file in a scratch folder of this process's own, removed at exit.
// The property fuzzed: an input is read or refused with shears::Error; anything else (a crash, a
// sanitizer report, another exception escaping, a hang, unbounded memory) is a finding.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "nn/models/registry.hpp"

namespace shears::fuzz {

// In /dev/shm (tmpfs) when the machine has one: ext4 flushes a file truncated and rewritten as it
// is closed (auto_da_alloc), 0.7 ms per input here, which held the harnesses to 250 runs a second.
class Scratch {
 public:
  Scratch() : dir_(base() / ("shears-fuzz-" + std::to_string(getpid()))) { std::filesystem::create_directories(dir_); }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static std::filesystem::path base() {
    std::error_code ec;
    return std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                         : std::filesystem::temp_directory_path();
  }
  std::filesystem::path dir_;
};

inline const std::filesystem::path& scratch() {
  static const Scratch scratch;
  return scratch.dir();
}

inline void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// The small model the checkpoint harness loads into; make_corpus saves its checkpoint as a seed.
inline std::shared_ptr<nn::Module> small_model() {
  nn::ModelOptions options;
  options.in_channels = 1;
  options.input_size = 2;
  options.num_classes = 3;
  options.widths = {4};
  return nn::make_model("mlp", options);
}

}  // namespace shears::fuzz
