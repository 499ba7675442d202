// `shears prune` and `shears sweep` end to end, run as a separate process on a model trained for
// one epoch on synthetic data: exact sparsity in the written checkpoint, physically smaller
// structured checkpoints, ShrinkBench's metrics, and a resumable sweep with its table and plot.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "prune/masks.hpp"
#include "prune/scope.hpp"
#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

using Run = test::CommandResult;
using test::run_shears;
const auto& contents = test::read_text;

std::vector<std::string> lines(const fs::path& path) {
  std::vector<std::string> out;
  std::istringstream in(contents(path));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// A fresh folder holding an MLPNet trained for one epoch on synthetic data (dense.safetensors).
fs::path trained(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("shears_cli_prune_" + name);
  fs::remove_all(dir);
  Run r = run_shears("train --model mlpnet --data synthetic --epochs 1 --batch-size 32 --lr 0.05 --workers 1 --output " +
                         (dir / "train").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  return dir;
}

const std::string kData = " --data synthetic --workers 1";
const std::string kPrune = "prune --latency-runs 2 --weights ";

}  // namespace

TEST_CASE("shears prune --sparse on --save-format sparse: sparse kernels, a compressed file that evaluates the same",
          "[cli][sparse]") {
  fs::path dir = trained("sparse_format");
  Run r = run_shears(kPrune + (dir / "train/best.safetensors").string() + kData +
                     " --method magnitude --sparsity 0.9 --sparse on --save-format sparse --finetune-epochs 1 --lr 0.01"
                     " --output " +
                     (dir / "p").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("3 of 3 Conv2d/Linear layers ran on the sparse kernels") != std::string::npos);
  CHECK(r.output.find("sparse (csr)") != std::string::npos);
  std::ifstream in(dir / "p/metrics.json");
  nlohmann::json m = nlohmann::json::parse(in);
  CHECK(m["file_bytes"]["format"] == "sparse");
  CHECK(m["file_bytes"]["pruned"].get<double>() <= 0.17 * m["file_bytes"]["dense"].get<double>());
  CHECK(m["layer_forward_ms"].size() == 3);
  // The compressed file evaluates to the loss the run reported, on the sparse and the dense path.
  for (const char* mode : {"on", "off"}) {
    Run e = run_shears("eval --weights " + (dir / "p/pruned.safetensors").string() + kData + " --sparse " + mode +
                       " --results-file " + (dir / "eval.json").string());
    INFO(e.output);
    REQUIRE(e.status == 0);
    std::ifstream ej(dir / "eval.json");
    CHECK(nlohmann::json::parse(ej)["loss"].get<double>() == Approx(m["loss"].get<double>()).epsilon(1e-5));
  }
}

TEST_CASE("shears prune writes an exactly sparse checkpoint and ShrinkBench metrics", "[cli]") {
  fs::path dir = trained("unstructured");
  Run r = run_shears(kPrune + (dir / "train/best.safetensors").string() + kData +
                         " --method magnitude --sparsity 0.5 --finetune-epochs 1 --lr 0.01 --output " + (dir / "p").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  for (const char* line : {"dense", "pruned", "fine-tuned", "theoretical speed-up", "measured speed-up", "fc1.weight"})
    CHECK(r.output.find(line) != std::string::npos);

  // Exactly floor(0.5 · d) zeros among the prunable weights, still after fine-tuning, masks kept.
  auto model = nn::load_model((dir / "p/pruned.safetensors").string());
  std::vector<std::string> names = prune::prunable_parameters(*model);
  prune::SparsityReport report = prune::sparsity_report(*model, names);
  CHECK(report.zeros == prune::prune_count(0.5, report.numel));
  for (const std::string& name : names) CHECK(model->has_mask(name));

  std::ifstream in(dir / "p/metrics.json");
  nlohmann::json m = nlohmann::json::parse(in);
  for (const char* key : {"size", "size_nz", "compression_ratio", "flops", "flops_nz", "theoretical_speedup", "loss",
                          "acc1", "acc5", "dense", "pruned", "finetuned", "sparsity", "measured_speedup", "layers"})
    CHECK(m.contains(key));
  // MLPNet: Linear layers only, so FLOPs = 2 × weight entries and nonzero FLOPs follow the mask.
  CHECK(m["flops"].get<int64_t>() == 2 * report.numel);
  CHECK(m["flops_nz"].get<int64_t>() == 2 * (report.numel - report.zeros));
  CHECK(m["size"].get<int64_t>() - m["size_nz"].get<int64_t>() == report.zeros);
  CHECK(m["compression_ratio"].get<double>() == Approx(m["size"].get<double>() / m["size_nz"].get<double>()));
  CHECK(m["theoretical_speedup"].get<double>() == Approx(m["flops"].get<double>() / m["flops_nz"].get<double>()));
  CHECK(m["sparsity"].get<double>() == Approx(0.5).margin(1e-4));
  CHECK(m["acc1"] == m["finetuned"]["acc1"]);
  CHECK(m["layers"].size() == names.size());
}

TEST_CASE("shears prune --structured writes a smaller model that reloads", "[cli]") {
  fs::path dir = trained("structured");
  Run r = run_shears(kPrune + (dir / "train/best.safetensors").string() + kData +
                         " --structured --importance l2 --distribution per-layer --sparsity 0.5 --output " +
                         (dir / "s").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto model = nn::load_model((dir / "s/pruned.safetensors").string());
  CHECK(model->parameter("fc1.weight").shape() == Shape{20, 3072});  // 40 hidden units → 20
  CHECK(model->parameter("fc2.weight").shape() == Shape{10, 20});    // 20 → 10
  CHECK(model->parameter("fc3.weight").shape() == Shape{10, 10});    // the classifier keeps its outputs
  std::ifstream in(dir / "s/metrics.json");
  nlohmann::json m = nlohmann::json::parse(in);
  CHECK(m["size_pruned_model"].get<int64_t>() == 20 * 3072 + 10 * 20 + 10 * 10);
  CHECK(m["theoretical_speedup"].get<double>() > 1.9);

  Run method = run_shears(kPrune + (dir / "train/best.safetensors").string() + kData +
                              " --structured --method snip --sparsity 0.5 --output " + (dir / "x").string());
  CHECK(method.status == 1);
  CHECK(method.output.find("--importance") != std::string::npos);
  Run percent = run_shears(kPrune + (dir / "train/best.safetensors").string() + kData +
                               " --sparsity 90 --output " + (dir / "x").string());
  CHECK(percent.status == 1);
  CHECK(percent.output.find("sparsity") != std::string::npos);
}

TEST_CASE("shears prune --method intrafusion fuses channels of a BN network into a smaller model that reloads",
          "[cli]") {
  fs::path dir = fs::temp_directory_path() / "shears_cli_prune_intrafusion";
  fs::remove_all(dir);
  Run train = run_shears("train --model resnet20 --data synthetic --limit-train 64 --limit-test 32 --epochs 1 "
                         "--batch-size 32 --workers 1 --output " + (dir / "train").string());
  INFO(train.output);
  REQUIRE(train.status == 0);
  const std::string weights = (dir / "train/best.safetensors").string();
  auto dense = nn::load_model(weights);
  for (const char* method : {"intrafusion", "remove --fold-bn"}) {
    INFO(method);
    fs::path out = dir / (std::string(method) == "intrafusion" ? "if" : "plain");
    Run r = run_shears(kPrune + weights + kData + " --limit-test 32 --structured --method " + method +
                       " --importance l1 --sparsity 0.5 --output " + out.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    auto model = nn::load_model((out / "pruned.safetensors").string());
    CHECK(model->parameter("layer1.0.conv1.weight").size(0) == 8);  // 16 channels → 8
    CHECK(!model->has_parameter("layer1.0.conv1.bias"));           // folding's biases went back into BN
    CHECK(model->num_parameters() < dense->num_parameters());
    nlohmann::json m = nlohmann::json::parse(std::ifstream(out / "metrics.json"));
    CHECK(m["method"] == (std::string(method) == "intrafusion" ? "intrafusion" : "structured"));
    CHECK(m["theoretical_speedup"].get<double>() > 2.0);
  }
  Run group = run_shears(kPrune + weights + kData + " --limit-test 32 --structured --method intrafusion --group-index 0"
                         " --sparsity 0.5 --output " + (dir / "g").string());
  INFO(group.output);
  REQUIRE(group.status == 0);
  auto one = nn::load_model((dir / "g/pruned.safetensors").string());
  // Groups are numbered from the output by their first producer: 0 is the last block's inner one.
  CHECK(one->parameter("layer3.2.conv1.weight").size(0) == 32);
  CHECK(one->parameter("fc.weight").size(1) == 64);              // the others keep their channels
  CHECK(one->parameter("layer1.0.conv1.weight").size(0) == 16);

  Run sweep = run_shears("sweep --weights " + weights + kData + " --limit-test 32 --structured --fold-bn "
                         "--methods l1,intrafusion:l1 --sparsities 0.3,0.6 --output " + (dir / "sweep").string());
  INFO(sweep.output);
  REQUIRE(sweep.status == 0);
  std::vector<std::string> rows = lines(dir / "sweep/sweep.csv");
  CHECK(rows.size() == 5);  // header + 2 methods × 2 sparsities
  CHECK(occurrences(contents(dir / "sweep/sweep.csv"), "intrafusion:l1,") == 2);
  Run unknown = run_shears("sweep --weights " + weights + kData + " --structured --methods intrafusion:snip "
                           "--sparsities 0.3 --output " + (dir / "bad").string());
  CHECK(unknown.status == 1);
  CHECK(unknown.output.find("snip") != std::string::npos);

  // --bn-recalibrate re-estimates the running statistics of the pruned network, for any method;
  // a sweep folder remembers it, in both directions.
  for (const char* recalibrate : {"", " --bn-recalibrate 2"}) {
    Run r = run_shears(kPrune + weights + kData + " --limit-test 32 --method magnitude --sparsity 0.5" + recalibrate +
                       " --output " + (dir / (std::string("bn") + (*recalibrate ? "2" : "0"))).string());
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  auto kept = nn::load_model((dir / "bn0/pruned.safetensors").string());
  auto recalibrated = nn::load_model((dir / "bn2/pruned.safetensors").string());
  for (const char* stat : {"layer2.1.bn2.running_mean", "layer2.1.bn2.running_var"}) {
    INFO(stat);
    CHECK(kept->buffer(stat).to_vector() == dense->buffer(stat).to_vector());
    CHECK(recalibrated->buffer(stat).to_vector() != dense->buffer(stat).to_vector());
  }
  CHECK(recalibrated->buffer("layer2.1.bn2.num_batches_tracked").item() == 2);
  const std::string recalibrated_sweep = "sweep --weights " + weights + kData + " --limit-test 32 --methods magnitude "
                                         "--sparsities 0.5 --output " + (dir / "bn-sweep").string();
  REQUIRE(run_shears(recalibrated_sweep + " --bn-recalibrate 2").status == 0);
  Run without = run_shears(recalibrated_sweep);
  CHECK(without.status == 1);
  CHECK(without.output.find("bn_recalibrate: 2 there, unset now") != std::string::npos);
}

TEST_CASE("shears sweep fills sweep.csv cell by cell, resumes, and plots", "[cli]") {
  fs::path dir = trained("sweep");
  std::string sweep = "sweep --weights " + (dir / "train/best.safetensors").string() + kData +
                      " --methods magnitude,random --sparsities 0.5,0.9 --output " + (dir / "sw").string();
  Run first = run_shears(sweep);
  INFO(first.output);
  REQUIRE(first.status == 0);
  std::vector<std::string> rows = lines(dir / "sw/sweep.csv");
  REQUIRE(rows.size() == 5);  // header + 2 methods × 2 sparsities
  CHECK(rows[0].rfind("method,sparsity,seed,acc1,acc5,loss,", 0) == 0);
  for (const char* cell : {"magnitude,0.5,0,", "magnitude,0.9,0,", "random,0.5,0,", "random,0.9,0,"})
    CHECK(occurrences(contents(dir / "sw/sweep.csv"), cell) == 1);
  for (size_t i = 1; i < rows.size(); ++i) CHECK(occurrences(rows[i], ",") == 11);

  std::string svg = contents(dir / "sw/sweep.svg");
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  CHECK(occurrences(svg, "<svg") == 1);
  CHECK(occurrences(svg, "<text") == occurrences(svg, "</text>"));
  CHECK(occurrences(svg, "<polyline") == 2);  // one line per method
  CHECK(occurrences(svg, "<polygon") == 0);   // no band with a single seed
  for (const char* label : {">magnitude<", ">random<", ">dense ("}) CHECK(svg.find(label) != std::string::npos);
  // The PNG copy exists exactly when librsvg's converter does (make deps installs it).
  const bool converter = std::system("command -v rsvg-convert > /dev/null 2>&1") == 0;
  CHECK(fs::exists(dir / "sw/sweep.png") == converter);
  if (converter) CHECK(contents(dir / "sw/sweep.png").rfind("\x89PNG\r\n\x1a\n", 0) == 0);
  CHECK(first.output.find(converter ? "(and .png)" : "(no PNG: rsvg-convert") != std::string::npos);

  Run again = run_shears(sweep);
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(occurrences(again.output, "skipped") == 4);
  CHECK(lines(dir / "sw/sweep.csv") == rows);

  Run seeds = run_shears(sweep + " --seeds 2");  // adds seed 1 of every cell
  INFO(seeds.output);
  REQUIRE(seeds.status == 0);
  CHECK(occurrences(seeds.output, "skipped") == 4);
  CHECK(lines(dir / "sw/sweep.csv").size() == 9);
  CHECK(occurrences(contents(dir / "sw/sweep.svg"), "<polygon") == 2);  // mean ± std bands

  Run other = run_shears(sweep + " --distribution per-layer");
  CHECK(other.status == 1);
  CHECK(other.output.find("other settings (distribution") != std::string::npos);
  CHECK(lines(dir / "sw/sweep.csv").size() == 9);
}

}  // namespace shears

namespace shears {

TEST_CASE("shears prune --method spode writes exact masks and its per-step trace", "[cli]") {
  fs::path dir = trained("spode");
  test::CommandResult r = test::run_shears("prune --data synthetic --weights " + (dir / "train" / "best.safetensors").string() +
                                           " --method spode --spode-steps 20 --sparsity 0.8 --batch-size 32 --output " +
                                           (dir / "out").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::vector<std::string> trace = lines(dir / "out" / "spode_trace.csv");
  REQUIRE(trace.size() == 21);  // header + one row per step
  CHECK(trace[0] == "step,dt,loss,soft_sparsity,polarised_sparsity,increased,regrown");
  nlohmann::json metrics = nlohmann::json::parse(contents(dir / "out" / "metrics.json"));
  CHECK(metrics["method"] == "spode");
  CHECK(metrics["sparsity"].get<double>() == Approx(0.8).margin(1e-3));
  for (const char* key : {"cpu", "isa", "threads", "blas_core", "blas_config", "conv_paths", "shears_version"})
    CHECK(metrics["machine"].contains(key));
}

}  // namespace shears

namespace shears {

TEST_CASE("shears prune --method swap|lr|woodfisher: exact sparsity, the stage trace, and the sweep", "[cli]") {
  fs::path dir = trained("swap");
  const std::string weights = (dir / "train" / "best.safetensors").string();
  // Gradual SWAP with the official code's step: 3 stages of the cubic schedule, noisy gradients,
  // one fine-tuning epoch between stages.
  Run r = run_shears(kPrune + weights + kData +
                     " --method swap --solver code --samples 64 --stages 3 --eps 1 --eps-relative --grad-noise 2 "
                     "--grad-noise-prop 0.5 --lr 0.01 --sparsity 0.8 --output " + (dir / "swap").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(occurrences(r.output, "fine-tune epoch 1/1") == 2);
  std::vector<std::string> trace = lines(dir / "swap" / "swap_trace.csv");
  REQUIRE(trace.size() == 4);  // header + one row per stage
  CHECK(trace[0].rfind("stage,method,sparsity,kept,plan,epsilon,mean_cost,eps_over_mean_cost,plan_entropy,", 0) == 0);
  CHECK(trace[1].rfind("1,swap,0,", 0) == 0);  // the cubic schedule starts dense
  CHECK(trace[3].rfind("3,swap,0.8,", 0) == 0);
  CHECK(trace[3].find(",sinkhorn,") != std::string::npos);
  nlohmann::json metrics = nlohmann::json::parse(contents(dir / "swap" / "metrics.json"));
  CHECK(metrics["method"] == "swap");
  CHECK(metrics["sparsity"].get<double>() >= 0.8 - 1e-4);  // a kept entry may hold 0 in the code's mode

  for (const char* method : {"lr", "woodfisher"}) {
    Run one = run_shears(kPrune + weights + kData + " --method " + method +
                         " --samples 64 --wf-block 500 --sparsity 0.9 --output " +
                         (dir / method).string());
    INFO(one.output);
    REQUIRE(one.status == 0);
    auto model = nn::load_model((dir / method / "pruned.safetensors").string());
    prune::SparsityReport report = prune::sparsity_report(*model, prune::prunable_parameters(*model));
    CHECK(report.zeros == prune::prune_count(0.9, report.numel));
    CHECK(lines(dir / method / "swap_trace.csv").size() == 2);
  }
  Run bad = run_shears(kPrune + weights + kData + " --method swap --solver newton --sparsity 0.5 --output " +
                       (dir / "x").string());
  CHECK(bad.status == 1);
  CHECK(bad.output.find("--solver") != std::string::npos);

  Run sweep = run_shears("sweep --weights " + weights + kData +
                         " --methods magnitude,lr --samples 64 --sparsities 0.9 --output " + (dir / "sw").string());
  INFO(sweep.output);
  REQUIRE(sweep.status == 0);
  for (const char* cell : {"magnitude,0.9,0,", "lr,0.9,0,"})
    CHECK(occurrences(contents(dir / "sw" / "sweep.csv"), cell) == 1);
}

}  // namespace shears

namespace shears {

// --protocol official fills every flag the command line leaves unset from the method's registry
// row (the official scripts' values for this model), shown by --print-config; a flag given wins.
TEST_CASE("shears prune --protocol official sets the official code's settings, explicit flags win", "[cli]") {
  fs::path dir = trained("protocol");
  const std::string weights = (dir / "train" / "best.safetensors").string();
  auto config = [&](const std::string& flags) {
    Run r = run_shears(kPrune + weights + kData + " --sparsity 0.9 --protocol official --print-config --output " +
                       (dir / "out").string() + " " + flags);
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(!fs::exists(dir / "out"));  // nothing ran
    return r.output;
  };
  const std::string swap = config("--method swap");
  for (const char* line : {"solver=\"code\"", "sinkhorn-plain=true", "eps=1", "lambda=0.01", "inner-iters=1",
                           "keep-floor=true", "finetune-sched=\"constant\"", "stage-finetune-epochs=1", "samples=1000",
                           "stages=14", "lr=0.001", "momentum=0.5", "weight-decay=0"})
    CHECK(swap.find(std::string("\n") + line + "\n") != std::string::npos);
  const std::string overridden = config("--method lr --samples 64 --lr 0.01");
  CHECK(overridden.find("\nsamples=64\n") != std::string::npos);
  CHECK(overridden.find("\nlr=0.01\n") != std::string::npos);
  CHECK(overridden.find("\nstages=14\n") != std::string::npos);
  CHECK(config("--method woodfisher").find("\nwf-damp=0.001\n") != std::string::npos);
  const std::string spode = config("--method spode");
  CHECK(spode.find("\nbatch-size=512\n") != std::string::npos);
  CHECK(spode.find("\nspode-steps=100\n") != std::string::npos);
  const std::string fusion = config("--structured --method intrafusion");
  CHECK(fusion.find("\ndistribution=\"per-layer\"\n") != std::string::npos);
  CHECK(fusion.find("\nfusion-normalization=\"code\"\n") != std::string::npos);
  Run own = run_shears(kPrune + weights + kData + " --sparsity 0.9 --method swap --print-config --output " +
                       (dir / "out").string());
  CHECK(own.output.find("\nsolver=\"principled\"\n") != std::string::npos);  // --protocol shears, the default

  Run snip = run_shears(kPrune + weights + kData + " --sparsity 0.9 --method snip --protocol official --output " +
                        (dir / "out").string());
  CHECK(snip.status != 0);
  CHECK(snip.output.find("snip has no official code") != std::string::npos);
  Run cnn = run_shears(
      "train --model cnn --cfg 4,M,8 --data synthetic --epochs 1 --batch-size 32 --workers 1 "
      "--output " +
      (dir / "cnn").string());
  REQUIRE(cnn.status == 0);
  Run other = run_shears(kPrune + (dir / "cnn" / "best.safetensors").string() + kData +
                         " --sparsity 0.9 --method swap --protocol official --output " + (dir / "out").string());
  CHECK(other.status != 0);
  CHECK(other.output.find("cover mlpnet, mobilenet_v1, resnet20, not cnn") != std::string::npos);
}

}  // namespace shears

namespace shears {

TEST_CASE("shears train --protocol official is SFW's official training setup; flags given win", "[cli]") {
  const std::string out = (fs::temp_directory_path() / "shears_cli_protocol_train").string();
  Run r = run_shears("train --data synthetic --protocol official --epochs 3 --print-config --output " + out);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(!fs::exists(out));
  for (const char* line :
       {"opt=\"sfw\"", "lr=1", "momentum=0.9", "weight-decay=0", "sched=\"dynamic_change\"", "augment=\"crop-flip\"",
        "sfw-k=10", "sfw-k-frac=0.05", "sfw-tau=15", "sfw-scope=\"all\"", "epochs=3"})
    CHECK(r.output.find(std::string("\n") + line + "\n") != std::string::npos);
  Run sgd = run_shears("train --data synthetic --protocol official --opt sgd --output " + out);
  CHECK(sgd.status != 0);
  CHECK(sgd.output.find("follows SFW's official code") != std::string::npos);
  CHECK(!fs::exists(out));
}

}  // namespace shears

namespace shears {

// A PyTorch state_dict saved as safetensors carries no architecture: --model names it (the data
// gives channels, classes and size), DDP's "module." prefix is stripped, and a wrong architecture
// lists the tensors that do not fit.
TEST_CASE("eval, prune and sweep load weights without shears' metadata with --model", "[cli]") {
  fs::path dir = trained("foreign");
  const std::string own = (dir / "train" / "best.safetensors").string(),
                    foreign = (dir / "foreign.safetensors").string();
  std::vector<safetensors::Entry> state = safetensors::load(own).tensors;
  for (safetensors::Entry& t : state) t.name = "module." + t.name;
  safetensors::save(foreign, state, {{"format", "pt"}});

  Run plain = run_shears("eval --weights " + foreign + kData);
  CHECK(plain.status != 0);
  CHECK(plain.output.find("--model NAME") != std::string::npos);
  Run reference = run_shears("eval --weights " + own + kData),
      named = run_shears("eval --model mlpnet --weights " + foreign + kData);
  INFO(named.output);
  REQUIRE(named.status == 0);
  auto first_line = [](const std::string& out, const std::string& path) {
    std::string line = out.substr(0, out.find('\n'));
    return line.substr(
        path.size(), line.rfind("images/s") == std::string::npos ? std::string::npos : line.rfind("  ") - path.size());
  };
  CHECK(first_line(named.output, foreign) == first_line(reference.output, own));  // the same loss and accuracies
  Run wrong = run_shears("eval --model resnet20 --weights " + foreign + kData);
  CHECK(wrong.status != 0);
  CHECK(wrong.output.find(foreign) != std::string::npos);
  CHECK(wrong.output.find("fc1.weight") != std::string::npos);

  Run pruned = run_shears(kPrune + foreign + kData + " --model mlpnet --method magnitude --sparsity 0.5 --output " +
                          (dir / "pruned").string());
  INFO(pruned.output);
  CHECK(pruned.status == 0);
  Run sweep = run_shears("sweep --model mlpnet --weights " + foreign + kData +
                         " --methods magnitude --sparsities 0.5 "
                         "--output " +
                         (dir / "sweep").string());
  INFO(sweep.output);
  CHECK(sweep.status == 0);
}

}  // namespace shears
