// A harness of tests/fuzz/ built without libFuzzer: runs LLVMFuzzerTestOneInput once on every file
// in the folders given (the committed corpora, tests/fuzz/corpus/<reader>/), so that `make test`
// replays each corpus with the ordinary compiler and, in `make test-asan`, under the sanitizers.
// A crash, a sanitizer report or an exception other than shears::Error ends it non-zero.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int a = 1; a < argc; ++a)
    for (const auto& entry : fs::directory_iterator(argv[a]))
      if (entry.is_regular_file()) inputs.push_back(entry.path());
  std::sort(inputs.begin(), inputs.end());
  for (const fs::path& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::printf("replayed %zu inputs\n", inputs.size());
  return inputs.empty() ? 1 : 0;
}
