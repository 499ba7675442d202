// `shears report` end to end at smoke scale: the whole plan runs on a small part of
// Fashion-MNIST, report.md holds a section and a computed verdict per paper, and a rerun skips
// every finished step.
#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("shears report runs its plan, writes a verdict per paper, and resumes", "[cli][report]") {
  fs::path dir = fs::temp_directory_path() / "shears_cli_report";
  fs::remove_all(dir);
  const std::string command = "report --limit-train 512 --limit-test 256 --threads 2 --output " + dir.string();
  test::CommandResult first = test::run_shears(command);
  INFO(first.output);
  REQUIRE(first.status == 0);
  std::string report = test::read_text(dir / "report.md");
  for (const char* section : {"## SWAP", "## Intra-Fusion", "## SpODE", "## SFW", "## All methods on one network"})
    CHECK(count(report, section) == 1);
  for (const char* plot : {"swap.svg", "intrafusion.svg", "spode.svg", "sfw.svg"}) CHECK(fs::exists(dir / plot));
  // The summary table repeats each section's overall verdict; every claim gets one of three.
  std::smatch m;
  for (const char* paper : {"SWAP", "Intra-Fusion", "SpODE", "SFW"}) {
    std::regex row("\\| " + std::string(paper) +
                   " \\| \\*\\*(claim reproduced|mixed|claim not reproduced)\\*\\* \\|");
    CHECK(std::regex_search(report, m, row));
  }
  CHECK(count(report, "Verdict (") == 5);  // SWAP has two claims
  CHECK(report.find("a smoke run, not evidence") != std::string::npos);

  test::CommandResult again = test::run_shears(command);
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(count(again.output, "done before, skipped") == 19);
  CHECK(count(test::read_text(dir / "logs/step_seconds.csv"), "\n") == 19);  // one row per step run
  // The same numbers: only the date and the times taken differ.
  auto timeless = [](const std::string& text) {
    return std::regex_replace(std::regex_replace(text, std::regex("written [0-9: -]+\\."), ""),
                              std::regex("The plan's finished steps took .*"), "");
  };
  CHECK(timeless(test::read_text(dir / "report.md")) == timeless(report));
}

}  // namespace shears
