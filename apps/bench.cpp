// `shears bench`: times whole training steps (forward, backward, SGD update) or inference of a
// model on random data after warm-up, and reports ms/step, images/s and achieved GFLOP/s.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/allocator.hpp"
#include "core/autograd.hpp"
#include "core/blas.hpp"
#include "core/kernels/kernels.hpp"
#include "core/ops.hpp"
#include "core/parallel.hpp"
#include "core/profile.hpp"
#include "core/random.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparsify.hpp"
#include "nn/summary.hpp"
#include "optim/optimizer.hpp"
#include "pipeline/prune_settings.hpp"
#include "pipeline/sparse_bench.hpp"

namespace shears::app {

namespace {

struct BenchConfig {
  std::string model = "resnet20", mode = "train", variant = "cifar";
  double sparsity = -1;  // unset: no --sparsity comparison
  std::string distribution = "per-layer", sparse = "auto";
  int64_t batch_size = 128, steps = 10, warmup = 2, in_channels = 3, input_size = 32, num_classes = 10;
  int threads = 0;
  bool compare_torch = false, profile = false;
};

// Runs bench/torch_step.py (Debian's python3-torch) with the same model, batch and threads and
// returns the median ms of PyTorch's fastest layout and OpenBLAS threading, or a negative value
// with the reason printed. Its peak-RSS lines are passed through. PyTorch loads the same OpenBLAS,
// which would fall back to its slow kernels on a CPU it does not recognise; it gets the kernel set
// shears chose, so the comparison is against PyTorch at its best.
double torch_median_ms(const BenchConfig& c) {
  const char* python = "/usr/bin/python3";
  std::string script = std::string(SHEARS_SOURCE_DIR) + "/bench/torch_step.py";
  blas::Info blas_info = blas::info();  // a coretype from the environment reaches the child anyway
  std::string environment = blas_info.coretype.empty() || blas_info.coretype_from_environment
                                ? ""
                                : "OPENBLAS_CORETYPE=" + blas_info.coretype + " ";
  char command[1024];
  std::snprintf(command, sizeof command,
                "%s%s %s --model %s --batch-size %lld --steps %lld --warmup %lld --threads %d --in-channels %lld "
                "--input-size %lld --num-classes %lld --mode %s 2>&1",
                environment.c_str(), python, script.c_str(), c.model.c_str(), (long long)c.batch_size,
                (long long)c.steps, (long long)c.warmup, num_threads(), (long long)c.in_channels,
                (long long)c.input_size, (long long)c.num_classes, c.mode.c_str());
  FILE* pipe = popen(command, "r");
  if (!pipe) return -1;
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  int status = pclose(pipe);
  auto at = output.rfind("torch ");
  char layout[64];
  double median = -1;
  if (status != 0 || at == std::string::npos ||
      std::sscanf(output.c_str() + at, "torch %63s %lf", layout, &median) != 2) {
    std::printf("--compare-torch: PyTorch run failed (needs Debian's python3-torch and python3-torchvision):\n%s",
                output.c_str());
    return -1;
  }
  std::printf("PyTorch 1.13 (%s, its fastest configuration): median %.2f ms\n", layout, median);
  for (auto line = output.find("peak RSS"); line != std::string::npos; line = output.find("peak RSS", line + 1))
    std::printf("PyTorch %s\n", output.substr(line, output.find('\n', line) - line).c_str());
  return median;
}

// --profile: --steps more steps with every op timed (profile::Session), after one to warm up.
void print_profile(const BenchConfig& c, const std::function<void()>& step) {
  profile::Session session;
  step();
  session.reset();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < c.steps; ++i) step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\nprofile of %lld %s steps (timing every op adds a little to each)\n%s\n", (long long)c.steps,
              c.mode.c_str(), profile::format_report(session.entries(), seconds / c.steps, c.steps).c_str());
}

// --sparsity: the model pruned by magnitude, masked-dense against sparse in one run.
int run_sparse(const BenchConfig& c, const nn::Module& model, const Tensor& x, const std::vector<int64_t>& labels) {
  auto pruned = model.clone();
  pipeline::prune_by_magnitude(*pruned, {c.sparsity, pipeline::parse_distribution(c.distribution)});
  pipeline::SparseBenchOptions o;
  o.sparse.mode = nn::parse_sparse_mode(c.sparse);
  o.train = c.mode == "train", o.runs = c.steps, o.warmups = static_cast<int>(std::max<int64_t>(1, c.warmup));
  o.profile = c.profile;
  const pipeline::SparseBenchResult r = pipeline::bench_sparse(*pruned, x, labels, o);
  std::printf("%s %s, batch %lld, sparsity %.2f (%s, first and last layer dense) | ISA %s, %d threads\n",
              c.model.c_str(), c.mode.c_str(), (long long)c.batch_size, c.sparsity, c.distribution.c_str(),
              kernels::isa_name(kernels::kernels().isa), num_threads());
  for (const nn::SparseChoice& l : r.layers)
    std::printf("  %-28s %-8s density %.3f  %s\n", l.name.c_str(), sparse_kind_name(l.kind), l.density,
                l.sparse ? "sparse" : (l.supported ? "dense (above the table's density)" : "dense (no sparse kernel)"));
  std::printf(
      "ms/step: masked dense %.2f (std %.2f), sparse %.2f (std %.2f) over %lld alternating runs | speed-up %.2fx\n",
      r.dense.median_ms, r.dense.std_ms, r.sparse.median_ms, r.sparse.std_ms, (long long)c.steps,
      r.dense.median_ms / r.sparse.median_ms);
  std::printf(
      "sparse weights: %.1f MB as sparse forms, %.1f MB dense | logits: max |dense - sparse| %.2g of max |logit| "
      "%.3g\n",
      r.sparse_bytes / 1048576.0, r.dense_weight_bytes / 1048576.0, r.max_difference, r.max_logit);
  if (c.profile)
    std::printf("\nprofile, masked dense:\n%s\nprofile, sparse:\n%s\n", r.dense_profile.c_str(),
                r.sparse_profile.c_str());
  return 0;
}

int run(const BenchConfig& c) {
  if (c.threads > 0) set_num_threads(c.threads);
  SHEARS_CHECK(c.mode == "train" || c.mode == "infer", "--mode", "expected train or infer, got '", c.mode, "'");
  SHEARS_CHECK(c.steps > 0 && c.batch_size > 0, "bench", "--steps and --batch-size must be positive");
  SHEARS_CHECK(!c.compare_torch || c.variant == "cifar", "--compare-torch",
               "bench/torch_step.py builds the cifar variants only, not --variant ", c.variant);
  nn::ModelOptions mo;
  mo.in_channels = c.in_channels;
  mo.num_classes = c.num_classes;
  mo.input_size = c.input_size;
  mo.variant = nn::parse_variant(c.variant);
  Generator gen(0);
  auto model = nn::make_model(c.model, mo, gen);
  Tensor x = Tensor::randn({c.batch_size, c.in_channels, c.input_size, c.input_size}, gen);
  std::vector<int64_t> labels(c.batch_size);
  for (int64_t i = 0; i < c.batch_size; ++i) labels[i] = i % c.num_classes;
  SHEARS_CHECK(c.sparsity < 0 || !c.compare_torch, "--compare-torch",
               "times the unpruned model; run it without --sparsity (PyTorch has no sparse twin here)");
  if (c.sparsity >= 0) return run_sparse(c, *model, x, labels);
  optim::Sgd sgd({{model->named_parameters(), 0.01, 0.0, 0.01}}, {0.01, 0.9, 0.0, 0.0, false});
  bool train = c.mode == "train";
  model->train(train);
  auto step = [&] {
    if (train) {
      Tensor loss = cross_entropy((*model)(x), labels);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    } else {
      NoGradGuard no_grad;
      (*model)(x);
    }
  };
  for (int64_t i = 0; i < c.warmup; ++i) step();
  std::vector<double> ms;
  for (int64_t i = 0; i < c.steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  nn::Summary summary = nn::summarize(*model, {1, c.in_channels, c.input_size, c.input_size});
  // A training step costs about three forwards (forward, backward for inputs, backward for weights).
  double flops = 2.0 * summary.macs * c.batch_size * (train ? 3.0 : 1.0);
  blas::Info b = blas::info();
  std::printf("%s %s, batch %lld, %dx%lldx%lld input | ISA %s, %d threads, BLAS core %s\n", c.model.c_str(),
              c.mode.c_str(), (long long)c.batch_size, (int)c.in_channels, (long long)c.input_size,
              (long long)c.input_size, kernels::isa_name(kernels::kernels().isa), num_threads(), b.core.c_str());
  std::printf(
      "ms/step: median %.2f (min %.2f, max %.2f) over %lld steps | %.0f images/s | %.1f GFLOP/s "
      "(FLOPs = 2 x MACs%s)\n",
      median, ms.front(), ms.back(), (long long)c.steps, c.batch_size * 1000.0 / median, flops / median * 1e-6,
      train ? ", x3 for a training step" : "");
  // The process's high-water mark: model, data, activations, gradients and the allocator's cache.
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "peak RSS %.0f MB (the whole process); tensors: at most %.0f MB in use at once, %.0f MB cached for reuse\n",
      usage.ru_maxrss / 1024.0, peak_live_block_bytes() / 1048576.0, cached_block_bytes() / 1048576.0);
  if (c.compare_torch) {
    double torch_ms = torch_median_ms(c);
    if (torch_ms > 0) std::printf("shears / PyTorch time: %.2fx (below 1: shears is faster)\n", median / torch_ms);
  }
  if (c.profile) print_profile(c, step);
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("bench", "Time training steps or inference of a model");
  auto c = std::make_shared<BenchConfig>();
  cli->add_option("--model", c->model)->capture_default_str();
  cli->add_option("--mode", c->mode, "train (forward + backward + SGD) or infer")->capture_default_str();
  cli->add_option("--batch-size,-b", c->batch_size)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli->add_option("--steps", c->steps)->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli->add_option("--warmup", c->warmup, "untimed steps first")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  add_model_shape_flags(*cli, c->in_channels, c->input_size, c->num_classes);
  cli->add_option("--variant", c->variant, "cifar (3x3 stem) or imagenet (7x7 stem and max-pool)")
      ->capture_default_str();
  cli->add_option("--threads", c->threads)->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cli->add_flag("--profile", c->profile, "then time every op of --steps more steps: per op kind and per layer");
  cli->add_option("--sparsity", c->sparsity,
                  "prune by magnitude (all but the first and last layer) and time masked dense against sparse")
      ->check(CLI::Range(0.0, 1.0));
  cli->add_option("--distribution", c->distribution, "with --sparsity: per-layer or global")->capture_default_str();
  cli->add_option("--sparse", c->sparse, "with --sparsity: auto (the density table), on or off")->capture_default_str();
  cli->add_flag("--compare-torch", c->compare_torch,
                "time the same model in PyTorch (python3-torch) and print the ratio");
  return {cli, [c, cli] {
            for (const char* flag : {"--distribution", "--sparse"})
              SHEARS_CHECK(cli->count(flag) == 0 || c->sparsity >= 0, flag, "applies only with --sparsity");
            return run(*c);
          }};
}

}  // namespace shears::app
