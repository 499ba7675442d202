// The committed fuzz corpora (tests/fuzz/corpus/<reader>/, minimised by `make fuzz-merge`) replayed
// through each harness built as a plain program: every input is read or refused with
// shears::Error, never a crash (and, in `make test-asan`, never a sanitizer report).
#include <filesystem>
#include <string>

#include "tests/cli_helpers.hpp"

namespace shears {

TEST_CASE("every committed fuzz corpus replays through its harness", "[fuzz]") {
  namespace fs = std::filesystem;
  const fs::path corpora = fs::path(SHEARS_FIXTURES) / ".." / "fuzz" / "corpus";
  int readers = 0;
  for (const auto& entry : fs::directory_iterator(corpora)) {
    const std::string name = entry.path().filename().string();
    const fs::path replay = fs::path(SHEARS_FUZZ_REPLAY) / name;
    INFO(name);
    REQUIRE(fs::exists(replay));
    test::CommandResult r = test::run_command(replay.string() + " " + entry.path().string());
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find("replayed ") != std::string::npos);
    ++readers;
  }
  CHECK(readers == 7);  // one corpus per harness in tests/fuzz/
}

}  // namespace shears
