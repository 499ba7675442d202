#include "nn/sparsify.hpp"

#include "core/error.hpp"
#include "nn/layers.hpp"

namespace shears::nn {

SparseMode parse_sparse_mode(const std::string& text) {
  if (text == "auto") return SparseMode::automatic;
  if (text == "on") return SparseMode::on;
  if (text == "off") return SparseMode::off;
  throw Error("--sparse: expected auto, on or off, got '" + text + "'");
}

const char* sparse_mode_name(SparseMode mode) {
  switch (mode) {
    case SparseMode::automatic: return "auto";
    case SparseMode::on: return "on";
    case SparseMode::off: return "off";
  }
  return "?";
}

namespace {

// The kept fraction of the layer's weight (its mask's ones, else its non-zeros), or -1 when the
// mask holds values other than 0 and 1 (the dense path scales by them; the sparse one cannot).
double kept_fraction(const Module& layer) {
  const bool masked = layer.has_mask("weight");
  const Tensor keep = masked ? layer.mask("weight") : layer.parameter("weight");
  int64_t kept = 0;
  for (int64_t i = 0; i < keep.numel(); ++i) {
    const float k = keep.data()[i];
    if (masked && k != 0.f && k != 1.f) return -1;
    kept += k != 0.f;
  }
  return keep.numel() == 0 ? 1.0 : static_cast<double>(kept) / static_cast<double>(keep.numel());
}

// The choice for one layer, or nullopt for a module without a weight to sparsify.
std::optional<SparseChoice> choice_for(const std::string& prefix, const Module& m, const SparsifyOptions& options) {
  SparseChoice c{prefix.empty() ? "weight" : prefix + ".weight", SparseKind::linear, true, 0, 0, false};
  if (const auto* conv = dynamic_cast<const Conv2d*>(&m)) {
    const Shape& w = conv->parameter("weight").shape();
    c.kind = w[2] == 1 && w[3] == 1 ? SparseKind::conv1x1 : SparseKind::conv;
    c.supported = conv->groups() == 1;
  } else if (!dynamic_cast<const Linear*>(&m)) {
    return std::nullopt;
  }
  c.density = kept_fraction(m);
  // Unmasked layers run sparse only frozen: training them sparse would keep their zeros at zero,
  // where the dense path lets them move. Non-binary masks stay dense.
  c.supported = c.supported && c.density >= 0 && (m.has_mask("weight") || options.freeze);
  if (c.density < 0) c.density = 1;
  c.threshold = options.max_density ? *options.max_density : sparse_density_threshold(c.kind);
  switch (options.mode) {
    case SparseMode::off: c.sparse = false; break;
    case SparseMode::automatic: c.sparse = c.supported && c.density <= c.threshold; break;
    case SparseMode::on:
      if (const auto* conv = dynamic_cast<const Conv2d*>(&m))
        SHEARS_CHECK(conv->groups() == 1 || c.density == 1.0, "--sparse on", c.name, " is pruned to density ",
                     c.density, " but is a grouped or depthwise convolution (groups ", conv->groups(),
                     "), which has no sparse kernel; --sparse auto keeps it dense");
      c.sparse = c.supported && c.density < 1.0;
      break;
  }
  return c;
}

}  // namespace

std::vector<SparseChoice> sparsify(Module& model, const SparsifyOptions& options) {
  SHEARS_CHECK(!options.max_density || (*options.max_density >= 0 && *options.max_density <= 1), "sparsify",
               "the density threshold must lie in [0, 1], got ", *options.max_density);
  std::vector<SparseChoice> choices;
  for (auto& [prefix, m] : model.named_modules()) {
    std::optional<SparseChoice> c = choice_for(prefix, *m, options);
    if (!c) continue;
    const Tensor mask = m->has_mask("weight") ? m->mask("weight") : Tensor();
    std::shared_ptr<SparseWeight> form;
    if (c->sparse) form = std::make_shared<SparseWeight>(SparseWeight::from_dense(m->parameter("weight"), mask));
    if (form && options.freeze) form->freeze();
    m->set_sparse_form("weight", form);
    choices.push_back(*c);
  }
  return choices;
}

void densify(Module& model) {
  for (auto& [prefix, m] : model.named_modules())
    if (m->has_parameter("weight")) m->set_sparse_form("weight", nullptr);
}

int64_t sparse_bytes(const Module& model) {
  int64_t bytes = 0;
  for (auto& [prefix, m] : model.named_modules())
    if (m->has_parameter("weight"))
      if (auto form = m->sparse_form("weight")) bytes += form->bytes();
  return bytes;
}

}  // namespace shears::nn
