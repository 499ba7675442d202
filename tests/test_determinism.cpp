// A result depends on the seed, the binary and the instruction set only, never on the thread
// count: the same training steps, SpODE run and principled LR solve with 1 and with 2 threads
// write bitwise identical files (reductions split into chunks fixed by the shapes, combined in a
// fixed order).
#include <cstring>
#include <filesystem>
#include <string>

#include "nn/safetensors.hpp"
#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("shears_determinism_" + name);
  fs::remove_all(dir);
  return dir;
}

// Runs `args` with --threads 1 and --threads 2, each into its own folder; returns the two folders.
std::pair<fs::path, fs::path> run_both(const std::string& name, const std::string& args) {
  const fs::path one = fresh_dir(name + "_1"), two = fresh_dir(name + "_2");
  for (const auto& [threads, dir] : {std::pair{1, one}, std::pair{2, two}}) {
    test::CommandResult r =
        test::run_shears(args + " --threads " + std::to_string(threads) + " --output " + dir.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  return {one, two};
}

// The tensors of two safetensors files, compared bit for bit (the metadata records the flags,
// --threads and --output among them, so the files themselves differ).
void check_same_tensors(const fs::path& a, const fs::path& b) {
  const safetensors::File x = safetensors::load(a.string()), y = safetensors::load(b.string());
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (const safetensors::Entry& e : x.tensors) {
    INFO(e.name);
    const safetensors::Entry* f = y.find(e.name);
    REQUIRE(f != nullptr);
    REQUIRE(f->value.numel() == e.value.numel());
    CHECK(std::memcmp(e.value.data(), f->value.data(), sizeof(float) * e.value.numel()) == 0);
  }
}

}  // namespace

TEST_CASE("training, SpODE and LR give bitwise identical results with 1 and 2 threads", "[determinism][cli]") {
  const auto [train1, train2] = run_both("resnet20",
                                         "train --model resnet20 --data synthetic --limit-train 192 "
                                         "--limit-test 64 --epochs 1 --batch-size 64 --workers 1");
  check_same_tensors(train1 / "last.safetensors", train2 / "last.safetensors");
  check_same_tensors(train1 / "last.optim.safetensors", train2 / "last.optim.safetensors");

  const std::string weights = (train1 / "last.safetensors").string();
  for (const char* method : {"spode", "lr"}) {
    INFO(method);
    const auto [pruned1, pruned2] =
        run_both(std::string("prune_") + method, "prune --weights " + weights + " --data synthetic --limit-train 192 " +
                                                     "--limit-test 64 --sparsity 0.8 --samples 64 --spode-steps 10 " +
                                                     "--method " + method);
    check_same_tensors(pruned1 / "pruned.safetensors", pruned2 / "pruned.safetensors");
  }
}

}  // namespace shears
