// The official protocols of the registry rows (prune/methods/registry.hpp): what each official
// code's scripts set, as `shears prune` settings. The values and their sources are tabled in
// docs/algorithms/swap.md, spode.md and intra-fusion.md (sections "The official code and shears").
#include <map>
#include <regex>

#include "core/error.hpp"
#include "nn/layers.hpp"
#include "prune/methods/builtin.hpp"

namespace shears::prune::builtin {

namespace {

std::string arch_of(const nn::Module& model) {
  auto arch = model.metadata().find("arch");
  return arch == model.metadata().end() ? "(unknown)" : arch->second;
}

const nn::Module& checked(const nn::Module* model, const std::string& method) {
  SHEARS_CHECK(model, "--protocol official", method, "'s settings depend on the model to prune");
  return *model;
}

// The settings for `model` from a table by architecture, refused for another one.
ProtocolSettings by_arch(const std::string& method, const nn::Module& model,
                         const std::map<std::string, ProtocolSettings>& table, ProtocolSettings common) {
  const std::string arch = arch_of(model);
  auto row = table.find(arch);
  if (row == table.end()) {
    std::string covered;
    for (const auto& [name, settings] : table) covered += (covered.empty() ? "" : ", ") + name;
    throw Error("--protocol official: " + method + "'s official scripts cover " + covered + ", not " + arch +
                " (give the settings as flags instead)");
  }
  common.insert(common.end(), row->second.begin(), row->second.end());
  return common;
}

// A parameter name as a regex matching only itself (scope patterns are regexes).
std::string literal(const std::string& name) {
  return std::regex_replace(name, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
}

// The official SWAP code's one IHT step per stage with plain Sinkhorn at ε = 1 (absolute),
// λ = 0.01, the kept count rounded down, and one epoch of SGD at a constant lr between stages.
const ProtocolSettings kSwapCommon = {{"solver", "code"},
                                      {"sinkhorn-plain", "true"},
                                      {"sinkhorn-norm", "l2"},
                                      {"eps", "1"},
                                      {"lambda", "0.01"},
                                      {"inner-iters", "1"},
                                      {"distribution", "global"},
                                      {"keep-floor", "true"},
                                      {"finetune-sched", "constant"},
                                      {"stage-finetune-epochs", "1"}};

// Per model: samples n per stage, stages, the fine-tuning SGD, and the scope of its scripts.
const std::map<std::string, ProtocolSettings> kSwapScripts = {
    {"mlpnet", {{"samples", "1000"}, {"stages", "14"}, {"lr", "0.001"}, {"momentum", "0.5"}, {"weight-decay", "0"}}},
    {"resnet20",
     {{"samples", "100"},
      {"stages", "10"},
      {"lr", "0.001"},
      {"momentum", "0.9"},
      {"weight-decay", "0.0001"},
      {"exclude-first-last", "true"},
      {"scope-exclude", ".*downsample.*"}}},
    {"mobilenet_v1",
     {{"samples", "1000"}, {"stages", "10"}, {"lr", "0.005"}, {"momentum", "0.9"}, {"weight-decay", "0.0001"}}},
};

}  // namespace

Protocol swap_protocol() {
  return {"github.com/youlei202/CBS (ce54d7dd)",
          [](const nn::Module* model) { return by_arch("swap", checked(model, "swap"), kSwapScripts, kSwapCommon); }};
}

Protocol woodfisher_protocol() {
  return {"github.com/youlei202/CBS (ce54d7dd)", [](const nn::Module* model) {
            std::map<std::string, ProtocolSettings> scripts{{"mlpnet", kSwapScripts.at("mlpnet")},
                                                            {"resnet20", kSwapScripts.at("resnet20")}};
            scripts["mlpnet"].push_back({"wf-damp", "0.001"});
            scripts["resnet20"].push_back({"wf-damp", "1e-10"});
            ProtocolSettings common{{"distribution", "global"},
                                    {"keep-floor", "true"},
                                    {"finetune-sched", "constant"},
                                    {"stage-finetune-epochs", "1"}};
            return by_arch("woodfisher", checked(model, "woodfisher"), scripts, common);
          }};
}

// The CIFAR scripts: 100 steps of batches of 512, r = 1.1, a global ranking keeping ⌊ρ·d⌋; every
// Conv2d and Linear weight but the first convolution, and the Linear biases.
Protocol spode_protocol() {
  return {"github.com/mzf666/sparsity-indexed-ode (573942d6)", [](const nn::Module* model) {
            ProtocolSettings s{{"spode-steps", "100"},
                               {"spode-radius", "1.1"},
                               {"batch-size", "512"},
                               {"distribution", "global"},
                               {"keep-floor", "true"}};
            bool first_conv = true;
            for (const auto& [path, m] : checked(model, "spode").named_modules()) {
              if (dynamic_cast<const nn::Conv2d*>(m) && first_conv) {
                s.push_back({"scope-exclude", literal(path + ".weight")});
                first_conv = false;
              }
              if (dynamic_cast<const nn::Linear*>(m) && m->has_parameter("bias"))
                s.push_back({"scope-include", literal(path + ".bias")});
            }
            return s;
          }};
}

// Data-free: BatchNorms folded, l1 importance, uniform masses, the code's normalisation, the same
// channel ratio in every group.
Protocol intra_fusion_protocol() {
  return {"github.com/alexandertheus/Intra-Fusion (82a28715)", [](const nn::Module*) {
            return ProtocolSettings{
                {"importance", "l1"}, {"fusion-source-mass", "uniform"}, {"fusion-target-mass", "uniform"},
                {"fusion-p", "1"},    {"fusion-normalization", "code"},  {"distribution", "per-layer"}};
          }};
}

// Training with SFW as its scripts do (CIFAR): 180 epochs of batches of 128 with crop and flip,
// lr 1 under dynamic_change, momentum 0.9 (EMA), no weight decay, K-sparse polytopes on every
// parameter (K = max(10, 5%), τ = 15 in initialization mode), gradient rescaling.
Protocol sfw_protocol() {
  return {"github.com/VITA-Group/SFW-Once-for-All-Pruning (84ec0780)", [](const nn::Module*) {
            return ProtocolSettings{{"opt", "sfw"},
                                    {"lr", "1"},
                                    {"momentum", "0.9"},
                                    {"weight-decay", "0"},
                                    {"sched", "dynamic_change"},
                                    {"epochs", "180"},
                                    {"batch-size", "128"},
                                    {"augment", "crop-flip"},
                                    {"crop-padding", "4"},
                                    {"sfw-k", "10"},
                                    {"sfw-k-frac", "0.05"},
                                    {"sfw-tau", "15"},
                                    {"sfw-tau-mode", "initialization"},
                                    {"sfw-constraint", "k-sparse"},
                                    {"sfw-scope", "all"},
                                    {"sfw-rescale", "gradient"}};
          }};
}

}  // namespace shears::prune::builtin
