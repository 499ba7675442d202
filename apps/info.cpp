// `shears info`: the build (version, ISA, threads, BLAS kernel set); with --models the model
// zoo; with --model NAME a per-layer summary; with --weights FILE what a checkpoint holds.
#include <cstdio>

#include "apps/commands.hpp"
#include "apps/session.hpp"
#include "core/blas.hpp"
#include "core/kernels/conv.hpp"
#include "core/kernels/kernels.hpp"
#include "core/machine.hpp"
#include "core/parallel.hpp"
#include "core/sparse.hpp"
#include "core/version.hpp"
#include "nn/models/registry.hpp"
#include "nn/safetensors.hpp"
#include "nn/summary.hpp"

namespace shears::app {

namespace {

struct InfoConfig {
  bool models = false;
  std::string model, weights;
  int64_t in_channels = 3, input_size = 32, num_classes = 10;
  std::string variant = "cifar";
  float width_multiplier = 1.f;
  std::string cfg, head = "gap";
  bool batch_norm = false;
};

void print_build() {
  blas::Info b = blas::info();
  std::printf("shears %s\n", kVersion);
  std::printf("CPU            %s\n", this_machine().cpu.c_str());
  std::printf("ISA            %s (SHEARS_ISA=scalar|avx2|avx512 forces one)\n",
              kernels::isa_name(kernels::kernels().isa));
  std::printf("threads        %d (SHEARS_NUM_THREADS or --threads)\n", num_threads());
  const std::optional<ConvPath> forced = forced_conv_path();
  std::printf("conv paths     %s (SHEARS_CONV_PATH=gemm|depthwise3x3|direct3x3|direct3x3-parity forces one)\n",
              forced ? (std::string(conv_path_name(*forced)) + " where it applies").c_str() : "by shape");
  std::printf(
      "sparse layers  below density linear %.2f, conv1x1 %.2f, conv %.2f (the table for %s; "
      "SHEARS_SPARSE_DENSITY=d overrides, --sparse on|off)\n",
      sparse_density_threshold(SparseKind::linear), sparse_density_threshold(SparseKind::conv1x1),
      sparse_density_threshold(SparseKind::conv), kernels::isa_name(kernels::kernels().isa));
  std::printf("BLAS           %s, single-threaded calls split across shears' threads\n", b.library.c_str());
  std::printf("BLAS core      %s\n", b.core.c_str());
  std::printf("BLAS coretype  %s\n",
              b.coretype.empty() ? "(OpenBLAS's own detection)"
                                 : (b.coretype + (b.coretype_from_environment ? " (from OPENBLAS_CORETYPE)"
                                                                              : " (chosen by shears for this CPU)"))
                                       .c_str());
  std::printf("BLAS config    %s\n", b.config.c_str());
}

std::string shape_string(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

nn::ModelOptions model_options(const InfoConfig& c) {
  nn::ModelOptions o;
  o.in_channels = c.in_channels;
  o.input_size = c.input_size;
  o.num_classes = c.num_classes;
  o.variant = nn::parse_variant(c.variant);
  o.width_multiplier = c.width_multiplier;
  o.cfg = c.cfg;
  o.batch_norm = c.batch_norm;
  o.head = c.head;
  return o;
}

// The layers of --model, built from the flags, or with --weights as well, loaded (strictly) from
// that state_dict: a check that weights from elsewhere fit the architecture, with their widths.
void print_summary(const InfoConfig& c) {
  auto model = c.weights.empty() ? nn::make_model(c.model, model_options(c))
                                 : nn::load_foreign_model(c.weights, c.model, model_options(c));
  if (!c.weights.empty()) std::printf("%s loads into %s strictly\n", c.weights.c_str(), c.model.c_str());
  nn::Summary s = nn::summarize(*model, {1, c.in_channels, c.input_size, c.input_size});
  std::printf("%s, input %s\n%-32s %-18s %-16s %12s %14s  %s\n", c.model.c_str(), shape_string(s.input_shape).c_str(),
              "layer", "type", "output", "parameters", "MACs", "conv path: forward dx dW");
  for (const auto& l : s.layers)
    std::printf("%-32s %-18s %-16s %12lld %14lld%s%s\n", l.name.c_str(), l.type.c_str(),
                shape_string(l.output_shape).c_str(), (long long)l.parameters, (long long)l.macs,
                l.conv_paths.empty() ? "" : "  ", l.conv_paths.c_str());
  std::printf("total: %lld parameters, %lld MACs = %.2f MFLOPs per image (FLOPs = 2 x MACs)\n", (long long)s.parameters,
              (long long)s.macs, s.flops() * 1e-6);
}

void print_checkpoint(const std::string& path) {
  safetensors::File f = safetensors::load(path);
  std::printf("%s\n", path.c_str());
  for (const auto& [key, value] : f.metadata) std::printf("  %-20s %s\n", key.c_str(), value.c_str());
  int64_t total = 0;
  for (const auto& e : f.tensors) {
    std::printf("  %-44s %-6s %s\n", e.name.c_str(), safetensors::dtype_name(e.dtype),
                shape_string(e.value.shape()).c_str());
    total += e.value.numel();
  }
  std::printf("%zu tensors, %lld values\n", f.tensors.size(), (long long)total);
}

}  // namespace

Command add_info_command(CLI::App& app) {
  CLI::App* cli = app.add_subcommand("info", "Show the build, the model zoo, a model's layers or a checkpoint");
  auto c = std::make_shared<InfoConfig>();
  cli->add_flag("--models", c->models, "list the model zoo");
  cli->add_option("--model", c->model, "per-layer summary of this model (with --weights: loaded from that state_dict)");
  cli->add_option("--weights", c->weights, "what this checkpoint holds")->check(CLI::ExistingFile);
  add_model_shape_flags(*cli, c->in_channels, c->input_size, c->num_classes);
  cli->add_option("--variant", c->variant, "cifar (3x3 stem, small head) or imagenet")->capture_default_str();
  cli->add_option("--width-multiplier", c->width_multiplier, "mobilenet_v1")->capture_default_str();
  add_cnn_flags(*cli, c->cfg, c->batch_norm, c->head);
  return {cli, [c] {
            if (c->models) {
              for (const auto& m : nn::model_catalog())
                std::printf("%-16s %s\n", m.name.c_str(), m.description.c_str());
            } else if (!c->model.empty()) {
              print_summary(*c);
            } else if (!c->weights.empty()) {
              print_checkpoint(c->weights);
            } else {
              print_build();
            }
            return 0;
          }};
}

}  // namespace shears::app
