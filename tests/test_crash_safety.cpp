// Crash safety of `shears train`, run as a separate process and stopped the hard way: kill -9 once
// a checkpoint exists, then --resume finishes the run with the numbers of an uninterrupted one and
// every checkpoint in the folder loads; SIGINT (Ctrl-C) and SIGTERM save interrupted.safetensors
// and exit with 128 + the signal; a diverging run stops, or with --skip-nonfinite skips steps,
// naming where NaN/Inf appeared. Every wait is bounded: a child still running at its deadline is
// killed and the test fails. Below them, the library pieces the resume and the NaN stop rely on.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "optim/optimizer.hpp"
#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A folder of this test process's own under the system temp dir, emptied first and removed at the end.
class Scratch {
 public:
  explicit Scratch(const std::string& name)
      : path_(fs::temp_directory_path() / ("shears-crash-" + name + "-" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// `shears <args>` as a child process, its stdout and stderr going to `log`.
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& log) : log_(log) {
    std::vector<std::string> argv_strings{SHEARS_BINARY};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {  // the child: only async-signal-safe calls until exec
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {  // a failed REQUIRE left it running
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void signal(int sig) const { REQUIRE(kill(pid_, sig) == 0); }

  // The wait status once it has ended; killed (and the test failed) if it outlives `limit`.
  int wait(std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        FAIL("shears still running after " << limit.count() << " s; its output:\n" << output());
      }
      std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
    return status;
  }

  bool running() {
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }

  std::string output() const { return test::read_text(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

// Polls `done` every 5 ms for at most `limit`, and only while the child runs.
bool wait_for(Child& child, const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline && child.running()) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

std::vector<std::string> split(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& w : words) text += w + " ";
  return text;
}

// summary.csv without the timing columns (seconds, images/s).
std::vector<std::string> summary_rows(const fs::path& dir) {
  std::vector<std::string> rows;
  std::istringstream in(test::read_text(dir / "summary.csv"));
  for (std::string line; std::getline(in, line);) rows.push_back(line.substr(0, line.rfind(',', line.rfind(',') - 1)));
  return rows;
}

// Every file of a run folder loads: no temporary file is left, the checkpoints rebuild their
// model, the training state and anything else in safetensors parse.
void check_run_folder(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    INFO(entry.path());
    CHECK(name.find(".tmp.") == std::string::npos);
    if (!name.ends_with(".safetensors")) continue;
    if (name.ends_with(".optim.safetensors"))
      CHECK_NOTHROW(safetensors::load(entry.path().string()));
    else
      CHECK_NOTHROW(nn::load_model(entry.path().string()));
  }
}

const std::vector<std::string> kTrain = split("train --model mlpnet --data synthetic --batch-size 32 --workers 1");

}  // namespace

TEST_CASE("kill -9 during training, then --resume: the run ends as an uninterrupted one", "[cli][crash]") {
  Scratch dir("kill");
  const fs::path straight = dir / "straight", killed = dir / "killed";
  std::vector<std::string> args = kTrain;
  args.insert(args.end(), {"--lr", "0.05", "--epochs", "12", "--output"});
  test::CommandResult whole = test::run_shears(joined(args) + straight.string());
  INFO(whole.output);
  REQUIRE(whole.status == 0);

  args.push_back(killed.string());
  Child child(args, dir / "killed.log");
  // The training state (weights and optimizer state) is the last file written at an epoch's end.
  REQUIRE(wait_for(child, [&] { return fs::exists(killed / "last.optim.safetensors"); }, 120s));
  child.signal(SIGKILL);
  const int status = child.wait(30s);
  INFO(child.output());
  REQUIRE(WIFSIGNALED(status));  // killed while it ran, not after it finished
  CHECK(summary_rows(killed).size() < summary_rows(straight).size());
  // A save killed mid-write leaves its temporary file behind (the name mkostemp would give it);
  // the resumed run removes it.
  std::ofstream(killed / "last.safetensors.tmp.Ab12Cd") << "half a checkpoint";

  test::CommandResult rest =
      test::run_shears(joined(args) + "--resume " + (killed / "last.safetensors").string());
  INFO(rest.output);
  REQUIRE(rest.status == 0);
  CHECK(rest.output.find("removed " + (killed / "last.safetensors.tmp.Ab12Cd").string()) != std::string::npos);
  CHECK(rest.output.find("resumed from " + (killed / "last.optim.safetensors").string()) != std::string::npos);
  // Each epoch logged once, with the uninterrupted run's numbers; the same final weights.
  CHECK(summary_rows(killed) == summary_rows(straight));
  CHECK(test::read_text(killed / "events.jsonl").size() > 0);
  std::istringstream events(test::read_text(killed / "events.jsonl"));
  int64_t expected_epoch = 1;
  for (std::string line; std::getline(events, line); ++expected_epoch)
    CHECK(line.find("\"epoch\":" + std::to_string(expected_epoch) + ",") != std::string::npos);
  CHECK(expected_epoch == 13);
  check_run_folder(killed);
  const safetensors::File a = safetensors::load((straight / "last.safetensors").string());
  const safetensors::File b = safetensors::load((killed / "last.safetensors").string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    REQUIRE(a.tensors[i].name == b.tensors[i].name);
    test::require_close(b.tensors[i].value, a.tensors[i].value, 1e-5, 1e-4);
  }
}

TEST_CASE("SIGINT (Ctrl-C) or SIGTERM: the weights are saved and the exit code is 128 + the signal", "[cli][crash]") {
  for (const int sig : {SIGINT, SIGTERM}) {
    const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    DYNAMIC_SECTION(name) {
      Scratch dir(name);
      const fs::path run = dir / "run";
      std::vector<std::string> args = kTrain;
      args.insert(args.end(), {"--lr", "0.05", "--epochs", "1000", "--output", run.string()});
      Child child(args, dir / "run.log");
      // The handler is in place once an epoch has ended.
      REQUIRE(wait_for(child, [&] { return fs::exists(run / "last.optim.safetensors"); }, 120s));
      child.signal(sig);
      const int status = child.wait(60s);
      const std::string output = child.output();
      INFO(output);
      REQUIRE(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 128 + sig);
      CHECK(output.find("interrupted (" + name + ") at epoch ") != std::string::npos);
      CHECK(output.find("weights saved to " + (run / "interrupted.safetensors").string()) != std::string::npos);
      CHECK(output.find("--resume " + (run / "last.safetensors").string()) != std::string::npos);
      REQUIRE(fs::exists(run / "interrupted.safetensors"));
      check_run_folder(run);

      test::CommandResult more = test::run_shears(joined(args) + " --stop-after 1 --resume " +
                                                  (run / "last.safetensors").string());
      INFO(more.output);
      CHECK(more.status == 0);
      check_run_folder(run);
    }
  }
}

TEST_CASE("a diverging run stops naming the step, or skips non-finite steps with --skip-nonfinite", "[cli][crash]") {
  Scratch dir("nan");
  // lr 1e30: the first step leaves huge but finite weights, whose forward pass overflows.
  std::vector<std::string> args = kTrain;
  args.insert(args.end(), {"--epochs", "3", "--lr", "1e30", "--output", (dir / "run").string()});
  test::CommandResult stop = test::run_shears(joined(args));
  INFO(stop.output);
  CHECK(stop.status == 1);
  CHECK(stop.output.find("train: epoch 1, step 2: the loss became") != std::string::npos);
  CHECK(stop.output.find("with finite weights (the forward pass overflowed); no checkpoint was written yet") !=
        std::string::npos);
  CHECK(stop.output.find("--skip-nonfinite skips such steps") != std::string::npos);

  // Skipping leaves the weights as they are, so every later step overflows too: after an
  // epoch's worth (32 steps of 32 images) in a row, it gives up.
  test::CommandResult skip = test::run_shears(joined(args) + " --skip-nonfinite");
  INFO(skip.output);
  CHECK(skip.status == 1);
  CHECK(skip.output.find("skipping the step: epoch 1, step 2: the loss became") != std::string::npos);
  CHECK(skip.output.find("skipped 31 of 32 steps (non-finite loss or gradients)") != std::string::npos);
  CHECK(test::read_text(dir / "run" / "events.jsonl").find("\"skipped_steps\":31") != std::string::npos);
  CHECK(skip.output.find("train: epoch 2, step 1: the loss became") != std::string::npos);
  CHECK(skip.output.find("the last 32 steps (an epoch's worth) were all skipped; the last checkpoint is " +
                         (dir / "run" / "last.safetensors").string()) != std::string::npos);
}

TEST_CASE("check_finite names where NaN or Inf appeared", "[optim][crash]") {
  nn::ModelOptions options;
  options.in_channels = 1;
  options.input_size = 2;
  options.num_classes = 3;
  options.widths = {5, 4};
  auto model = nn::make_model("mlp", options);
  const optim::NamedTensors params = model->named_parameters();
  Tensor loss = cross_entropy((*model)(Tensor::ones({2, 1, 2, 2})), {0, 2});
  loss.backward();
  REQUIRE(optim::check_finite(loss.item(), params).problem.empty());

  // Backward runs from the loss: of two broken gradients, the later layer's is reached first.
  REQUIRE(params.size() >= 4);
  params[0].second.grad().data()[0] = NAN;
  params[2].second.grad().data()[1] = INFINITY;
  optim::NonFinite grads = optim::check_finite(loss.item(), params);
  CHECK(grads.problem == "the gradients became non-finite, first in '" + params[2].first +
                             "' going backward from the loss (2 of " + std::to_string(params.size()) +
                             " parameter tensors hold NaN or Inf)");
  CHECK(grads.skippable);

  optim::NonFinite overflow = optim::check_finite(INFINITY, params);
  CHECK(overflow.problem == "the loss became inf with finite weights (the forward pass overflowed)");
  CHECK(overflow.skippable);

  // The forward pass meets the first broken weights first; skipping steps cannot mend them.
  params[3].second.data()[0] = NAN;
  params[1].second.data()[0] = -INFINITY;
  optim::NonFinite broken = optim::check_finite(NAN, params);
  CHECK(broken.problem == "the loss became nan: the weights of '" + params[1].first +
                              "' (the first of 2 parameter tensors) hold NaN or Inf");
  CHECK_FALSE(broken.skippable);
}

TEST_CASE("optimizer state round-trips for resuming, and bad step counts are refused", "[optim][crash]") {
  Tensor w = Tensor::ones({3}).requires_grad_(true);
  optim::NamedTensors params{{"w", w}};
  optim::Adam adam({{params, 0.1, 0.0, 0.1}}, {});
  for (int i = 0; i < 2; ++i) {
    adam.zero_grad();
    sum(mul(w, w)).backward();
    adam.step();
  }
  const optim::NamedTensors state = adam.state_dict();  // w.exp_avg, w.exp_avg_sq, w.step (a scalar), step
  optim::Adam resumed({{params, 0.1, 0.0, 0.1}}, {});
  REQUIRE_NOTHROW(resumed.load_state_dict(state));
  CHECK(resumed.state_dict().size() == state.size());

  auto with = [&](const std::string& key, Tensor value) {
    optim::NamedTensors changed = state;
    for (auto& [name, t] : changed)
      if (name == key) t = value;
    return changed;
  };
  CHECK_THROWS_WITH(resumed.load_state_dict(with("w.step", Tensor::scalar(1.5f))),
                    Catch::Contains("entry 'w.step' should be a whole number of steps") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(resumed.load_state_dict(with("step", Tensor::scalar(NAN))),
                    Catch::Contains("entry 'step' should be a whole number of steps"));
  CHECK_THROWS_WITH(resumed.load_state_dict(with("step", Tensor::ones({2}))),
                    Catch::Contains("entry 'step' should be a scalar step count, got shape [2]"));
  CHECK_THROWS_WITH(resumed.load_state_dict(with("w.exp_avg", Tensor::ones({4}))),
                    Catch::Contains("entry 'w.exp_avg' has shape [4], parameter 'w' has [3]"));
}

}  // namespace shears
