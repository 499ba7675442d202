#include "nn/models/registry.hpp"

#include <charconv>
#include <cmath>
#include <functional>

#include "core/allocator.hpp"
#include "core/version.hpp"
#include "nn/layers.hpp"
#include "nn/models/mlp.hpp"
#include "nn/models/mobilenet.hpp"
#include "nn/models/resnet.hpp"
#include "nn/models/vgg.hpp"
#include "nn/sparse_checkpoint.hpp"

namespace shears::nn {

namespace {

// Which of the optional ModelOptions fields a model reads (the others must stay unset).
enum Accepts : unsigned { kNone = 0, kMultiplier = 1, kDropout = 2, kMlp = 4, kCnn = 8 };

struct Entry {
  ModelInfo info;
  std::function<std::shared_ptr<Module>(const ModelOptions&, Generator&)> build;
  unsigned accepts;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> list = {
      {{"mlpnet", "MLP 784-40-20-10 of WoodFisher/CHITA/SWAP (no biases)"}, mlpnet, kMlp},
      {{"mlp", "MLP with the given hidden widths"}, mlp, kMlp},
      {{"resnet20", "CIFAR ResNet-20, BasicBlock 16/32/64, projection shortcuts"}, resnet20, kNone},
      {{"resnet32", "CIFAR ResNet-32, BasicBlock 16/32/64, projection shortcuts"}, resnet32, kNone},
      {{"resnet56", "CIFAR ResNet-56, BasicBlock 16/32/64, projection shortcuts"}, resnet56, kNone},
      {{"resnet18", "torchvision ResNet-18 (imagenet or cifar stem)"}, resnet18, kNone},
      {{"resnet50", "torchvision ResNet-50 (imagenet or cifar stem)"}, resnet50, kNone},
      {{"vgg11_bn", "torchvision VGG-11 with BN (imagenet or cifar head)"}, vgg11_bn, kDropout},
      {{"vgg16_bn", "torchvision VGG-16 with BN (imagenet or cifar head)"}, vgg16_bn, kDropout},
      {{"vgg19_bn", "torchvision VGG-19 with BN (imagenet or cifar head)"}, vgg19_bn, kDropout},
      {{"mobilenet_v1", "MobileNetV1 with width multiplier (imagenet or cifar strides)"},
       mobilenet_v1,
       kMultiplier | kDropout},
      {{"cnn", "plain CNN from --cfg (VGG's notation: widths and M), --batch-norm, --head gap|fc"}, cnn, kCnn},
  };
  return list;
}

const Entry& find(const std::string& name) {
  std::string names;
  for (const Entry& e : entries()) {
    if (e.info.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.info.name;
  }
  throw Error("model: unknown architecture '" + name + "' (known: " + names + ")");
}

void check_accepted(const Entry& e, const ModelOptions& o) {
  const std::string& name = e.info.name;
  SHEARS_CHECK(o.width_multiplier == 1.f || (e.accepts & kMultiplier), name, "has no width multiplier");
  SHEARS_CHECK(!o.dropout || (e.accepts & kDropout), name, "has no classifier dropout");
  SHEARS_CHECK(!o.bias || (e.accepts & kMlp), name, "the bias option is for mlp/mlpnet");
  SHEARS_CHECK(!o.batch_norm || (e.accepts & (kMlp | kCnn)), name, "the batch_norm option is for mlp, mlpnet and cnn");
  SHEARS_CHECK((o.cfg.empty() && o.head == "gap") || (e.accepts & kCnn), name, "the cfg and head options are for cnn");
}

// The configuration a cnn was built with: its widths, when given, in place of cfg's numbers (a
// channel-pruned model's checkpoint then records the configuration it has).
std::string cnn_config_with_widths(const ModelOptions& o) {
  std::vector<int64_t> config = parse_cnn_config(cnn_config(o));
  size_t next = 0;
  for (int64_t& v : config)
    if (v != Vgg::M && next < o.widths.size()) v = o.widths[next++];
  return cnn_config_text(config);
}

std::string number(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

template <class T>
T parse(const std::string& key, const std::string& text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  SHEARS_CHECK(ec == std::errc() && end == text.data() + text.size(), "checkpoint metadata", "'", key,
               "' should be a number, got '", text, "'");
  // from_chars reads "inf" and "nan" as floats.
  SHEARS_CHECK(std::isfinite(static_cast<double>(value)), "checkpoint metadata", "'", key,
               "' should be a finite number, got '", text, "'");
  return value;
}

bool parse_bool(const std::string& key, const std::string& text) {
  SHEARS_CHECK(text == "true" || text == "false", "checkpoint metadata", "'", key, "' should be true or false, got '",
               text, "'");
  return text == "true";
}

}  // namespace

const std::vector<ModelInfo>& model_catalog() {
  static const std::vector<ModelInfo> catalog = [] {
    std::vector<ModelInfo> out;
    for (const Entry& e : entries()) out.push_back(e.info);
    return out;
  }();
  return catalog;
}

std::shared_ptr<Module> make_model(const std::string& name, const ModelOptions& options, Generator& gen) {
  const Entry& e = find(name);
  check_accepted(e, options);
  std::shared_ptr<Module> model = e.build(options, gen);
  model->metadata() = model_metadata(name, options);
  return model;
}

std::map<std::string, std::string> model_metadata(const std::string& name, const ModelOptions& o) {
  std::map<std::string, std::string> m{{"arch", name},
                                       {"in_channels", std::to_string(o.in_channels)},
                                       {"num_classes", std::to_string(o.num_classes)},
                                       {"input_size", std::to_string(o.input_size)},
                                       {"variant", variant_name(o.variant)}};
  unsigned accepts = find(name).accepts;
  if (accepts & kMultiplier) m["width_multiplier"] = number(o.width_multiplier);
  if (o.dropout) m["dropout"] = number(*o.dropout);
  if (o.bias) m["bias"] = *o.bias ? "true" : "false";
  if (accepts & (kMlp | kCnn)) m["batch_norm"] = o.batch_norm ? "true" : "false";
  if (accepts & kCnn) {
    m["cfg"] = cnn_config_with_widths(o);
    m["head"] = o.head;
  }
  return m;
}

ModelOptions options_from_metadata(const std::map<std::string, std::string>& metadata, ModelOptions o) {
  for (const auto& [key, text] : metadata) {
    if (key == "in_channels") o.in_channels = parse<int64_t>(key, text);
    else if (key == "num_classes") o.num_classes = parse<int64_t>(key, text);
    else if (key == "input_size") o.input_size = parse<int64_t>(key, text);
    else if (key == "variant") o.variant = parse_variant(text);
    else if (key == "width_multiplier") o.width_multiplier = parse<float>(key, text);
    else if (key == "dropout") o.dropout = parse<float>(key, text);
    else if (key == "bias") o.bias = parse_bool(key, text);
    else if (key == "batch_norm") o.batch_norm = parse_bool(key, text);
    else if (key == "cfg")
      o.cfg = text;
    else if (key == "head")
      o.head = text;
  }
  return o;
}

std::vector<int64_t> widths_from_state_dict(const std::string& name, const ModelOptions& options,
                                            const std::vector<safetensors::Entry>& state) {
  const Entry& e = find(name);
  if (e.accepts & kMlp) return mlp_widths_from_state_dict(state);
  // A model of the same architecture tells which layers the widths list covers and in which
  // order. Built one channel wide (a valid width for every layer: residual sums and depthwise
  // convs only need equal widths), so even vgg16_bn's ImageNet head costs nothing. The state's
  // conv and linear weights, but the classifier, are one per width; a wrong count is refused by
  // the builder ("expected N widths, got M").
  std::map<std::string, const Tensor*> tensors;
  size_t layers_in_state = 0;
  for (const safetensors::Entry& t : state) {
    tensors.emplace(t.name, &t.value);
    bool weight = t.name.ends_with(".weight") || t.name.ends_with(".weight_orig");
    layers_in_state += weight && (t.value.dim() == 2 || t.value.dim() == 4);
  }
  SHEARS_CHECK(layers_in_state > 1, name, "the state has no conv or linear weights to read the widths from");
  ModelOptions one_wide = options;
  one_wide.widths.assign(layers_in_state - 1, 1);
  Generator scratch(0);
  std::shared_ptr<Module> model;
  try {
    model = e.build(one_wide, scratch);
  } catch (const Error& err) {
    throw Error(std::string("the state's conv and linear weights do not fit the architecture: ") + err.what());
  }
  std::vector<std::string> layers;
  std::string last_linear;
  for (auto& [path, m] : model->named_modules()) {
    if (dynamic_cast<Conv2d*>(m) != nullptr || dynamic_cast<Linear*>(m) != nullptr) layers.push_back(path);
    if (dynamic_cast<Linear*>(m) != nullptr) last_linear = path;
  }
  std::vector<int64_t> widths;
  for (const std::string& path : layers) {
    if (path == last_linear) continue;
    auto it = tensors.find(path + ".weight");
    if (it == tensors.end()) it = tensors.find(path + ".weight_orig");
    SHEARS_CHECK(it != tensors.end() && it->second->dim() >= 1, name, "the state has no '", path,
                 ".weight' (or '_orig') to read the layer's width from");
    widths.push_back(it->second->size(0));
  }
  return widths;
}

std::shared_ptr<Module> model_from_state_dict(const std::string& name, ModelOptions options,
                                              const std::vector<safetensors::Entry>& state) {
  // A strict load gives every tensor of the model a state tensor of its shape, so the model needs
  // the memory the state holds. Options or shapes that do not fit together (num_classes 10^9, a
  // width read from a tensor with a zero dimension) would build a far larger one before the load
  // could refuse it: the allocation is refused instead. Twice the state, and 1 MiB for small
  // models' rounding and the one-wide model widths_from_state_dict builds.
  size_t state_bytes = 0;
  for (const safetensors::Entry& t : state) state_bytes += static_cast<size_t>(t.value.numel()) * sizeof(float);
  const size_t budget = 2 * state_bytes + (size_t{1} << 20);
  AllocationLimit limit(budget, detail::concat(name, ": the model that in_channels ", options.in_channels,
                                               ", num_classes ", options.num_classes, ", input_size ",
                                               options.input_size, " and the tensors' shapes describe needs more than ",
                                               budget, " bytes of tensors, while the state holds ", state_bytes,
                                               ": its options and shapes do not fit together"));
  options.widths = widths_from_state_dict(name, options, state);
  Generator scratch(0);  // every value is overwritten by the state
  std::shared_ptr<Module> model = make_model(name, options, scratch);
  model->load_state_dict(state);
  return model;
}

std::map<std::string, std::string> refreshed_metadata(const Module& model) {
  auto arch = model.metadata().find("arch");
  if (arch == model.metadata().end()) return {};
  ModelOptions options = options_from_metadata(model.metadata());
  options.widths = widths_from_state_dict(arch->second, options, model.state_dict());
  return model_metadata(arch->second, options);
}

std::shared_ptr<Module> load_foreign_model(const std::string& path, const std::string& name, ModelOptions options,
                                           LoadReport* non_strict) {
  safetensors::File file = safetensors::load(path);
  check_checkpoint_schema(file.metadata, path);
  expand_sparse_entries(file, path);
  for (safetensors::Entry& t : file.tensors)
    for (const std::string prefix : {"module.", "_orig_mod."})
      if (t.name.rfind(prefix, 0) == 0) t.name.erase(0, prefix.size());
  if (non_strict) {
    std::shared_ptr<Module> model = make_model(name, options);
    *non_strict = model->load_state_dict(file.tensors, false);
    return model;
  }
  try {
    return model_from_state_dict(name, options, file.tensors);
  } catch (const Error& e) {
    // Tensors of another architecture: a strict load into its default model names them.
    std::string listed;
    try {
      make_model(name, options)->load_state_dict(file.tensors);
    } catch (const Error& strict) {
      listed = std::string("; ") + strict.what();
    }
    throw Error(path + ": " + e.what() + listed);
  }
}

std::vector<std::string> load_initial_weights(Module& model, const std::string& path) {
  safetensors::File file = safetensors::load(path);
  check_checkpoint_schema(file.metadata, path);
  expand_sparse_entries(file, path);
  for (safetensors::Entry& t : file.tensors)
    for (const std::string prefix : {"module.", "_orig_mod."})
      if (t.name.rfind(prefix, 0) == 0) t.name.erase(0, prefix.size());
  std::vector<std::string> head;  // the last Linear's tensors
  for (const auto& [name, module] : model.named_modules())
    if (dynamic_cast<const Linear*>(module)) head = {name + ".weight", name + ".bias"};
  std::vector<safetensors::Entry> kept;
  std::vector<std::string> reinitialised;
  const auto params = model.state_dict(MaskFormat::dense);
  for (safetensors::Entry& t : file.tensors) {
    std::string name = t.name;  // a masked tensor's pair (<name>_orig, <name>_mask) stands for <name>
    for (const std::string suffix : {"_orig", "_mask"})
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        name.resize(name.size() - suffix.size());
    const auto mine = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.name == name; });
    const bool in_head = std::find(head.begin(), head.end(), name) != head.end();
    if (in_head && mine != params.end() && mine->value.shape() != t.value.shape()) {
      if (std::find(reinitialised.begin(), reinitialised.end(), name) == reinitialised.end())
        reinitialised.push_back(name);
    } else {
      kept.push_back(std::move(t));
    }
  }
  LoadReport report = model.load_state_dict(kept, false);
  std::erase_if(report.missing, [&](const std::string& name) {
    return std::find(reinitialised.begin(), reinitialised.end(), name) != reinitialised.end();
  });
  SHEARS_CHECK(report.ok(), path, "does not fit the model being trained: ", report.describe(),
               " (only the classifier may differ, when the class count changes)");
  return reinitialised;
}

void check_checkpoint_schema(const std::map<std::string, std::string>& metadata, const std::string& path) {
  auto schema = metadata.find("shears.schema");
  if (schema == metadata.end()) return;  // schema 1, or weights from elsewhere
  int version = 0;
  const std::string& text = schema->second;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  SHEARS_CHECK(ec == std::errc() && end == text.data() + text.size() && version >= 1, path,
               "metadata key 'shears.schema': expected a positive integer, got '", text, "'");
  SHEARS_CHECK(version <= kCheckpointSchema, path, "written with checkpoint schema ", version, " (by shears ",
               metadata.count("shears.version") ? metadata.at("shears.version") : "?", "); this shears reads up to ",
               kCheckpointSchema, ": update shears");
}

std::shared_ptr<Module> load_model(const std::string& path) {
  safetensors::File file = safetensors::load(path);
  check_checkpoint_schema(file.metadata, path);
  expand_sparse_entries(file, path);
  auto arch = file.metadata.find("arch");
  SHEARS_CHECK(arch != file.metadata.end(), path,
               "no 'arch' in the metadata (not written by shears?): name the "
               "architecture (--model NAME, with --variant, --num-classes and "
               "--in-channels when they differ from the data's; in C++ "
               "load_foreign_model)");
  std::shared_ptr<Module> model;
  try {
    model = model_from_state_dict(arch->second, options_from_metadata(file.metadata), file.tensors);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  for (const auto& [key, value] : file.metadata)  // the input contract travels with the weights
    if (key.rfind("input.", 0) == 0) model->metadata()[key] = value;
  return model;
}

}  // namespace shears::nn
