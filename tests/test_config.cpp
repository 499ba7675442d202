// core/config_file: the `--config` format read strictly. What shears writes reads back; every
// malformed line (of each kind) is refused naming its line; sizes, nesting and file kinds are capped.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/config_file.hpp"
#include "core/error.hpp"
#include "tests/helpers.hpp"

namespace shears::config {
namespace {

namespace fs = std::filesystem;
using Catch::Contains;

std::vector<std::string> values(const std::vector<Item>& items, const std::string& key) {
  for (const Item& item : items)
    if (item.key == key) return item.values;
  FAIL("no key " << key);
  return {};
}

void refused(const std::string& text, int line, const std::string& why) {
  INFO(text);
  CHECK_THROWS_WITH(parse(text, "c.toml"),
                    Contains("c.toml: line " + std::to_string(line) + ": expected") && Contains(why));
}

}  // namespace

TEST_CASE("config: the lines shears writes read back, with sections, comments and arrays", "[config]") {
  const std::vector<Item> items = parse(
      "config=\"\"\nmodel=\"mlpnet\"\r\nwidths=\"\"\nlr=0.1   # the step\n\n# a comment\nnesterov=false\n"
      "sparsities = [0.5, 0.9,\n  0.95, ]\nname = 'a \"raw\" one'\nesc = \"C:\\dir\\x\"\n[train]\nepochs = 3\n"
      "prune.method = magnitude\nnested = [[1, 2], [3]]\nout = runs/demo-1\n",
      "c.toml");
  REQUIRE(items.size() == 12);
  CHECK(values(items, "config") == std::vector<std::string>{""});
  CHECK(values(items, "model") == std::vector<std::string>{"mlpnet"});
  CHECK(values(items, "lr") == std::vector<std::string>{"0.1"});
  CHECK(values(items, "sparsities") == std::vector<std::string>{"0.5", "0.9", "0.95"});
  CHECK(values(items, "name") == std::vector<std::string>{"a \"raw\" one"});
  CHECK(values(items, "esc") == std::vector<std::string>{"C:\\dir\\x"});  // verbatim, as shears writes it
  CHECK(values(items, "nested") == std::vector<std::string>{"1", "2", "3"});
  CHECK(values(items, "out") == std::vector<std::string>{"runs/demo-1"});
  CHECK(items[5].line == 8);  // sparsities
  CHECK(items[8].sections == std::vector<std::string>{"train"});
  CHECK(items[9].sections == std::vector<std::string>{"train", "prune"});
  CHECK(items[9].key == "method");
}

TEST_CASE("config: every malformed line is refused naming it", "[config]") {
  refused("lr = [1,2", 1, "']' to close the array opened on line 1");
  refused("a = 1\nlr = [1,\n2\n", 4, "']' to close the array opened on line 2, got the end of the file");
  refused("model = \"mlp\nepochs = 3\n", 1, "'\"' to close the string opened on line 1");
  refused("model = 'mlp", 1, "to close the string opened on line 1");
  refused("a = 1\nlr = 0.1 x\n", 2, "the end of the line, got 'x'");
  refused("lr 0.1\n", 1, "'=' after the key");
  refused("= 3\n", 1, "a key");
  refused("lr =\n", 1, "a value");
  refused("[train\nlr = 1\n", 1, "']' to close the section header");
  refused("lr = 1\nlr = 2\n", 2, "each key once");
  refused("a = [1 2]\n", 1, "',' or ']'");
  refused(std::string("a = 1\nb = \"x\0y\"\n", 14), 2, "NUL");
  refused(std::string("a = 1\0\n", 7), 1, "the end of the line, got byte 0x00");
  refused(std::string("# note \0\n", 9), 1, "NUL");
}

TEST_CASE("config: deep nesting is refused at the cap, never overflowing the stack", "[config]") {
  std::string ok = "a = " + std::string(kMaxNesting, '[') + "1" + std::string(kMaxNesting, ']') + "\n";
  CHECK(values(parse(ok, "c.toml"), "a") == std::vector<std::string>{"1"});
  for (size_t depth : {size_t(kMaxNesting + 1), size_t(85000), size_t(500000)}) {
    const std::string deep = "a = " + std::string(depth, '[');
    CHECK_THROWS_WITH(parse(deep, "c.toml"), Contains("line 1: expected arrays nested at most 16 deep"));
  }
  CHECK_THROWS_WITH(parse(std::string(85000, '['), "c.toml"), Contains("a section name"));
}

TEST_CASE("config files: regular files up to 1 MiB; a FIFO or device is refused at once", "[config]") {
  const fs::path dir = fs::temp_directory_path() / ("shears-test-config-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string big = (dir / "big.toml").string(), fifo = (dir / "fifo.toml").string();
  std::ofstream(big) << "a = \"" << std::string(kMaxBytes, 'x') << "\"\n";
  CHECK_THROWS_WITH(read(big), Contains(big) && Contains("expected at most 1048576 bytes"));
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read(fifo), Contains(fifo) && Contains("got a FIFO"));
  for (const char* device : {"/dev/zero", "/dev/urandom"})
    CHECK_THROWS_WITH(read(device), Contains(device) && Contains("got a character device"));
  CHECK_THROWS_WITH(read(dir.string()), Contains("got a directory"));
  fs::remove_all(dir);
}

TEST_CASE("config: differences list each key that changed, leaving out the ignored ones", "[config]") {
  const auto a = parse("model=\"mlpnet\"\nlr=0.1\nthreads=2\nwidths=[1,2]\n", "a");
  const auto b = parse("model=\"resnet20\"\nlr=0.1\nthreads=1\nwidths=[1,3]\nopt=\"adam\"\n", "b");
  CHECK(differences(a, b, {"threads"}) == std::vector<std::string>{"model: 'mlpnet' -> 'resnet20'",
                                                                   "opt: (absent) -> 'adam'",
                                                                   "widths: '[1,2]' -> '[1,3]'"});
  CHECK(differences(a, a, {}).empty());
}

}  // namespace shears::config

TEST_CASE("closest_key names what a misspelt key most likely meant, at most two edits away", "[config]") {
  const std::vector<std::string> known{"epochs", "lr", "momentum", "weight-decay"};
  CHECK(shears::config::closest_key("epoch", known) == "epochs");               // one deletion
  CHECK(shears::config::closest_key("momentun", known) == "momentum");          // one substitution
  CHECK(shears::config::closest_key("wieght-decay", known) == "weight-decay");  // two substitutions
  CHECK(shears::config::closest_key("lrate", known).empty());                   // three edits from lr
  CHECK(shears::config::closest_key("lrate", known, 3) == "lr");
  CHECK(shears::config::closest_key("anything", {}).empty());
}
