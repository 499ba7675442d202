// The `shears` command against bad inputs and faults, one class of input per test: a diverged
// model, files that are not regular files, run folders used twice, a run's own config fed back,
// a closed pipe, memory exhaustion and out-of-range flag values.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>

#include "nn/models/registry.hpp"
#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

using Result = test::CommandResult;
using test::run_command;
using test::run_shears;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("shears_robust_" + name);
  fs::remove_all(dir);
  return dir;
}

const std::string kQuick = "train --data synthetic --batch-size 32 --workers 1 ";

// Every command that could block runs under `timeout`: a hang fails the test instead of the suite.
Result run_bounded(const std::string& args) {
  return run_command("timeout -s KILL 60 " + std::string(SHEARS_BINARY) + " " + args);
}

bool contains(const Result& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

// summary.csv without the timing columns (seconds, images/s).
std::vector<std::string> summary_rows(const fs::path& dir) {
  std::vector<std::string> rows;
  std::istringstream in(test::read_text(dir / "summary.csv"));
  for (std::string line; std::getline(in, line);) rows.push_back(line.substr(0, line.rfind(',', line.rfind(',') - 1)));
  return rows;
}

}  // namespace

TEST_CASE("a model whose logits overflow scores 0%, never 100%, and is never chosen as best", "[cli][robust]") {
  const fs::path dir = fresh_dir("diverged");
  Result trained = run_shears(kQuick + "--model mlpnet --epochs 2 --output " + dir.string());
  INFO(trained.output);
  REQUIRE(trained.status == 0);
  // Finite weights that overflow in the forward pass: the classifier's scaled by 1e25.
  auto model = nn::load_model((dir / "best.safetensors").string());
  for (auto& [name, tensor] : model->named_parameters())
    for (float& v : std::span(tensor.data(), static_cast<size_t>(tensor.numel()))) v *= 1e25f;
  model->save_checkpoint((dir / "overflow.safetensors").string());
  Result eval = run_shears("eval --data synthetic --weights " + (dir / "overflow.safetensors").string());
  INFO(eval.output);
  REQUIRE(eval.status == 0);
  CHECK(contains(eval, "top-1 0.00%"));
  CHECK(contains(eval, "256 of 256 images have non-finite logits"));

  const fs::path wild = fresh_dir("diverged_lr");
  Result r = run_shears(
      "train --model mlpnet --data synthetic --epochs 1 --batch-size 32 --workers 1 --lr 50 "
      "--skip-nonfinite --output " +
      wild.string());
  INFO(r.output);
  CHECK(!contains(r, "top-1 100.00%"));
  CHECK(contains(r, "non-finite logits (counted wrong)"));
  CHECK(!fs::exists(wild / "best.safetensors"));
}

TEST_CASE("a FIFO, a device or a folder where a file is expected is refused at once", "[cli][robust]") {
  const fs::path dir = fresh_dir("fifo");
  fs::create_directories(dir);
  const std::string fifo = (dir / "w.safetensors").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // no writer: a blocking open never returns
  Result weights = run_bounded("eval --data synthetic --weights " + fifo);
  CHECK(weights.status == 1);
  CHECK(contains(weights, fifo + ": file: expected a regular file, got a FIFO"));
  for (const std::string& config : {fifo, std::string("/dev/zero"), std::string("/dev/urandom"), dir.string()}) {
    Result r = run_bounded(kQuick + "--model mlpnet --config " + config + " --output " + (dir / "run").string());
    INFO(config << "\n" << r.output);
    CHECK(r.status != 0);
    CHECK(r.status != 137);  // not killed by the timeout
    CHECK(contains(r, config));
  }
  CHECK(!fs::exists(dir / "run"));
  const fs::path state_dir = dir / "state";
  fs::create_directories(state_dir);
  REQUIRE(::mkfifo((state_dir / "last.optim.safetensors").c_str(), 0600) == 0);
  Result resume = run_bounded(kQuick + "--model mlpnet --output " + state_dir.string() + " --resume " +
                              (state_dir / "last.safetensors").string());
  CHECK(resume.status == 1);
  CHECK(contains(resume, "got a FIFO"));
}

TEST_CASE("run folders: one writer, no silent overwrite, --resume only of the same run", "[cli][robust]") {
  const fs::path dir = fresh_dir("folder");
  const std::string run = kQuick + "--model mlpnet --output " + dir.string() + " ";
  REQUIRE(run_shears(run + "--epochs 2").status == 0);
  const std::string best = test::read_text(dir / "best.safetensors");

  Result again = run_shears(run + "--epochs 2");
  CHECK(again.status == 1);
  CHECK(contains(again, "already holds a run"));
  CHECK(contains(again, "--overwrite"));
  CHECK(test::read_text(dir / "best.safetensors") == best);  // untouched

  Result both = run_shears(run + "--overwrite --resume " + (dir / "last.safetensors").string());
  CHECK(both.status == 1);
  CHECK(contains(both, "give one of them"));
  Result overwrite = run_shears(run + "--overwrite --epochs 2 --lr 0.07");
  INFO(overwrite.output);
  CHECK(overwrite.status == 0);
  CHECK(summary_rows(dir).size() == 3);

  // Resuming with other settings or another optimizer would continue a different run.
  Result other = run_shears(run + "--lr 0.2 --epochs 3 --resume " + (dir / "last.safetensors").string());
  CHECK(other.status == 1);
  CHECK(contains(other, "lr: '0.07' -> '0.2'"));
  CHECK(contains(other, "epochs: '2' -> '3'"));
  Result adam = run_shears(run + "--epochs 2 --lr 0.07 --opt adam --resume " + (dir / "last.safetensors").string());
  CHECK(adam.status == 1);
  CHECK(contains(adam, "saved by the optimizer 'sgd', this run uses 'adam'"));

  // The message's advice works: the run's config.toml gives its settings back (and carries no
  // --overwrite or --resume of its own); resuming into a folder of another run is refused.
  const std::string config = test::read_text(dir / "config.toml");
  CHECK(config.find("overwrite") == std::string::npos);
  CHECK(config.find("resume") == std::string::npos);
  const fs::path another = fresh_dir("folder_other");
  REQUIRE(run_shears(kQuick + "--model mlpnet --epochs 1 --output " + another.string()).status == 0);
  Result mixed = run_shears(kQuick + "--model mlpnet --epochs 2 --lr 0.07 --output " + another.string() + " --resume " +
                            (dir / "last.safetensors").string());
  CHECK(mixed.status == 1);
  CHECK(contains(mixed, "holds another run"));
  Result resumed = run_shears("train --config " + (dir / "config.toml").string() + " --epochs 3 --output " +
                              dir.string() + " --resume " + (dir / "last.safetensors").string());
  INFO(resumed.output);
  CHECK(resumed.status == 1);  // --epochs 3 differs from the run's 2: listed, as above
  CHECK(contains(resumed, "epochs: '2' -> '3'"));
  CHECK(!contains(resumed, "overwrite"));

  // A second writer is refused naming the first one's pid while the first runs.
  const fs::path busy = fresh_dir("busy");
  const std::string slow = std::string(SHEARS_BINARY) +
                           " train --data synthetic --model mlpnet --batch-size 8 "
                           "--workers 1 --epochs 1000 --output " +
                           busy.string();
  Result second = run_command("(" + slow + " >/dev/null 2>&1 & pid=$!; while [ ! -s " + (busy / "lock").string() +
                              " ]; do sleep 0.05; done; " + SHEARS_BINARY + " " + kQuick + "--model mlpnet --output " +
                              busy.string() + "; echo \"holder=$pid\"; kill -9 $pid)");
  INFO(second.output);
  const size_t at = second.output.find("holder=");
  REQUIRE(at != std::string::npos);
  const std::string pid = second.output.substr(at + 7, second.output.find('\n', at) - at - 7);
  CHECK(contains(second, "another shears (pid " + pid + ") is writing this run folder"));
}

TEST_CASE("a run refused before its first epoch leaves no folder; a run's config.toml reads back", "[cli][robust]") {
  const fs::path dir = fresh_dir("refused");
  for (const char* bad : {"--model resnet7", "--model mlpnet --opt rmsprop", "--model mlpnet --augment mixup"}) {
    Result r = run_shears(kQuick + bad + " --output " + dir.string());
    CHECK(r.status == 1);
    CHECK(!fs::exists(dir));
  }
  // A flag given twice in a config file, with and without its section, is refused naming both lines.
  const fs::path twice = fs::temp_directory_path() / "shears_robust_twice.toml";
  std::ofstream(twice) << "lr = 0.1\n[train]\nlr = 0.2\n";
  Result both = run_shears(kQuick + "--model mlpnet --config " + twice.string() + " --output " + dir.string());
  CHECK(both.status == 1);
  CHECK(contains(both, "line 3: key 'lr' was set already on line 1"));
  CHECK(!fs::exists(dir));
  const fs::path first = fresh_dir("config_a"), second = fresh_dir("config_b");
  REQUIRE(run_shears(kQuick + "--model mlpnet --epochs 2 --widths 64,32 --output " + first.string()).status == 0);
  Result again = run_shears("train --config " + (first / "config.toml").string() + " --output " + second.string());
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(summary_rows(second) == summary_rows(first));
}

TEST_CASE("a closed stdout does not end a training: it finishes, saves, and notes it once", "[cli][robust]") {
  const fs::path dir = fresh_dir("pipe");
  Result r =
      run_command("bash -c '" + std::string(SHEARS_BINARY) + " " + kQuick + "--epochs 3 --model mlpnet --output " +
                  dir.string() + " 2>&1 | head -c 1 >/dev/null; echo status=${PIPESTATUS[0]}'");
  INFO(r.output);
  CHECK(contains(r, "status=0"));
  CHECK(fs::exists(dir / "best.safetensors"));
  CHECK(summary_rows(dir).size() == 4);
  const std::string events = test::read_text(dir / "events.jsonl");
  const size_t first = events.find("\"output_error\"");
  CHECK(first != std::string::npos);
  CHECK(events.find("\"output_error\"", first + 1) == std::string::npos);
}

// (AddressSanitizer reserves terabytes of address space for its shadow: no ulimit -v lets it start.)
#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("out of memory names the step and the size, and ends the process at once", "[cli][robust]") {
  const fs::path dir = fresh_dir("oom");
  Result r = run_command("bash -c 'ulimit -v 1500000; timeout -s KILL 120 " + std::string(SHEARS_BINARY) +
                         " train --model resnet20 --data synthetic --batch-size 1024 --epochs 1 --workers 1 --output " +
                         dir.string() + "'");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(contains(r, "out of memory: a tensor of"));
  CHECK(contains(r, "forward of "));

  // Threads whose stacks do not fit: the pool and the loader say which thread could not start.
  for (const char* flags : {"--threads 500 --workers 1", "--threads 1 --workers 250"}) {
    Result t = run_command("bash -c 'ulimit -v 1000000; timeout -s KILL 120 " + std::string(SHEARS_BINARY) +
                           " train --model mlpnet --data synthetic --epochs 1 " + flags + " --output " +
                           fresh_dir("threads").string() + "'");
    INFO(flags << "\n" << t.output);
    CHECK(t.status == 1);
    CHECK((contains(t, "thread pool: cannot start thread") || contains(t, "data loader: cannot start worker thread")));
  }
}
#endif

TEST_CASE("extreme flag values are refused before use", "[cli][robust]") {
  for (const std::string flags :
       {"--epochs 9223372036854775807", "--batch-size -5", "--batch-size 0", "--threads 100000", "--workers 9999",
        "--limit-train -1", "--widths 64,-3", "--input-size 9223372036854775807", "--stop-after -4"}) {
    Result bad = run_shears(kQuick + "--model mlpnet " + flags + " --output " + fresh_dir("extreme").string());
    INFO(flags << "\n" << bad.output);
    CHECK(bad.status != 0);
    CHECK(bad.status != 2);  // not an unexpected error
    CHECK(contains(bad, flags.substr(0, flags.find(' '))));
  }
}

}  // namespace shears
