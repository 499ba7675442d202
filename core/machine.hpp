// The machine a result was made on, as run folders, prune and sweep outputs and reports record
// it: what a result depends on besides the seed (the binary's version, the kernel table's ISA,
// a forced convolution path) and what a timing depends on (the CPU, the threads, OpenBLAS's
// kernels). docs/design.md#the-machine-record lists where each command writes it.
#pragma once
#include <filesystem>
#include <string>

namespace shears {

struct Machine {
  std::string cpu;          // the model name the kernel reports (/proc/cpuinfo)
  std::string isa;          // the kernel table in use
  int threads = 0;          // shears' pool
  std::string blas_core;    // OpenBLAS's kernel set
  std::string blas_config;  // OpenBLAS's build line, its version first
  std::string conv_paths;   // "by shape", or the path SHEARS_CONV_PATH forces
  std::string version;      // shears
};

Machine this_machine();

// One line of JSON (an object with the fields above), and one line for people.
std::string machine_json(const Machine& m);
std::string machine_line(const Machine& m);

// Appends this machine, with the UTC time, as a line of `file` (machine.jsonl: one line per
// invocation, so a run resumed elsewhere keeps both).
void append_machine_record(const std::filesystem::path& file);

}  // namespace shears
