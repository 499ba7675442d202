// The tables of prune/methods/registry.hpp: the built-in rows, listed here explicitly (a program that
// links the library sees them without any static initialisation), then the registered ones.
#include <algorithm>
#include <memory>

#include "core/error.hpp"
#include "prune/bn_recalibrate.hpp"
#include "prune/methods/builtin.hpp"

namespace shears::prune {

namespace {

std::vector<PruningMethod>& method_table() {
  static std::vector<PruningMethod> table{
      {"magnitude",
       MethodKind::masks,
       "smallest |w| (in stages of the cubic schedule with stages > 1)",
       builtin::magnitude,
       false,
       {},
       true},
      {"random", MethodKind::masks, "uniformly random scores (seeded)", builtin::random},
      {"snip", MethodKind::masks, "|w * dL/dw| on training batches", builtin::snip},
      {"grasp", MethodKind::masks, "-w * Hg on training batches", builtin::grasp},
      {"synflow", MethodKind::masks, "iterative synaptic flow, data-free", builtin::synflow},
      {"spode", MethodKind::masks, "the mask ODE on training batches", builtin::spode, true, builtin::spode_protocol()},
      {"swap", MethodKind::masks, "optimal transport over the LR support (EWR)",
       [](nn::Module& m, const PruneContext& c) { builtin::staged(m, c, StageMethod::swap); }, false,
       builtin::swap_protocol(), true},
      {"lr", MethodKind::masks, "ridge regression on per-sample gradients",
       [](nn::Module& m, const PruneContext& c) { builtin::staged(m, c, StageMethod::lr); }, false,
       builtin::swap_protocol(), true},
      {"woodfisher", MethodKind::masks, "OBS with a blockwise empirical Fisher",
       [](nn::Module& m, const PruneContext& c) { builtin::staged(m, c, StageMethod::woodfisher); }, false,
       builtin::woodfisher_protocol(), true},
      {"remove", MethodKind::channels, "remove the least important channels of each group", builtin::remove_channels},
      {"intrafusion", MethodKind::channels, "fuse each group's channels into the kept ones by optimal transport",
       builtin::intra_fusion, false, builtin::intra_fusion_protocol()},
      {"sfw",
       MethodKind::training,
       "stochastic Frank-Wolfe under sparsity constraints: shears train --opt sfw",
       {},
       false,
       builtin::sfw_protocol()},
  };
  return table;
}

std::vector<ChannelImportance>& importance_table() {
  static std::vector<ChannelImportance> table{
      {"l1", "l1 norm of the group's weights", false,
       [](nn::Module&, const PruneContext&) { return magnitude_importance(1); }},
      {"l2", "l2 norm of the group's weights", false,
       [](nn::Module&, const PruneContext&) { return magnitude_importance(2); }},
      {"lamp", "layer-adaptive magnitude scores", false,
       [](nn::Module&, const PruneContext&) { return lamp_importance(); }},
      {"bn", "|gamma| of the group's BatchNorms", true,
       [](nn::Module&, const PruneContext&) { return bn_scale_importance(); }},
      {"taylor", "|w * dL/dw| summed over training batches", false, builtin::taylor},
      {"random", "uniformly random (seeded)", false,
       [](nn::Module&, const PruneContext& c) {
         auto gen = std::make_shared<Generator>(c.seed);  // lives as long as the importance
         Importance inner = random_importance(*gen);
         return Importance([gen, inner](const nn::Module& m, const Group& g) { return inner(m, g); });
       }},
  };
  return table;
}

template <class Row>
std::string join_names(const std::vector<Row>& rows, const std::function<bool(const Row&)>& keep,
                       const std::string& last_separator) {
  std::vector<std::string> names;
  for (const Row& r : rows)
    if (keep(r)) names.push_back(r.name);
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? last_separator : ", ") + names[i];
  return out;
}

}  // namespace

std::vector<std::string> builtin::checked_names(const nn::Module& model, const PruneContext& context) {
  check_target(context.target);
  return prunable_parameters(model, context.scope);
}

const std::vector<PruningMethod>& pruning_methods() { return method_table(); }

void register_method(PruningMethod method) {
  for (const PruningMethod& m : method_table())
    SHEARS_CHECK(m.name != method.name, "register_method", "a pruning method named '", method.name, "' exists");
  SHEARS_CHECK(!method.name.empty(), "register_method", "the method has no name");
  SHEARS_CHECK(method.run || method.kind == MethodKind::training, "register_method", "the method '", method.name,
               "' has no run function");
  method_table().push_back(std::move(method));
}

std::string method_names(MethodKind kind, const std::string& last_separator) {
  return join_names<PruningMethod>(
      method_table(), [kind](const PruningMethod& m) { return m.kind == kind; }, last_separator);
}

const PruningMethod& find_method(const std::string& name, MethodKind kind, const std::string& flag) {
  for (const PruningMethod& m : method_table()) {
    if (m.name != name) continue;
    SHEARS_CHECK(m.kind != MethodKind::training || kind == MethodKind::training, flag, "'", name,
                 "' prunes while a model trains: ", m.help);
    if (m.kind == kind) return m;
  }
  throw Error(flag + ": unknown method '" + name + "'; expected " + method_names(kind));
}

const std::vector<ChannelImportance>& channel_importances() { return importance_table(); }

void register_importance(ChannelImportance importance) {
  for (const ChannelImportance& i : importance_table())
    SHEARS_CHECK(i.name != importance.name, "register_importance", "a channel importance named '", importance.name,
                 "' exists");
  SHEARS_CHECK(!importance.name.empty() && importance.make, "register_importance",
               "an importance needs a name and a make function");
  importance_table().push_back(std::move(importance));
}

std::string importance_names(const std::string& last_separator) {
  return join_names<ChannelImportance>(
      importance_table(), [](const ChannelImportance&) { return true; }, last_separator);
}

const ChannelImportance& find_importance(const std::string& name, const std::string& flag) {
  for (const ChannelImportance& i : importance_table())
    if (i.name == name) return i;
  throw Error(flag + ": unknown importance '" + name + "'; expected " + importance_names());
}

BatchSource open_batches(const PruneContext& context, const BatchRequest& request) {
  SHEARS_CHECK(context.training_batches, request.who, "needs training batches (PruneContext::training_batches)");
  return context.training_batches(request);
}

std::vector<Batch> draw_batches(const PruneContext& context, int64_t count, uint64_t seed, const std::string& who) {
  SHEARS_CHECK(count > 0 && context.batch_size > 0, who, "needs a positive number of batches and batch size");
  BatchSource source = open_batches(context, {context.batch_size, seed, false, 1, who});
  std::vector<Batch> batches;
  for (int64_t i = 0; i < count; ++i) batches.push_back(source());
  return batches;
}

void prune_model(nn::Module& model, const std::string& method, const PruneContext& context, int64_t bn_batches) {
  SHEARS_CHECK(bn_batches >= 0, "--bn-recalibrate", "must be >= 0, got ", bn_batches);
  const PruningMethod* row = nullptr;
  for (const PruningMethod& m : method_table())
    if (m.name == method) row = &m;
  SHEARS_CHECK(row && row->run, "--method", "unknown method '", method, "'; expected ",
               method_names(MethodKind::masks, ", "), ", ", method_names(MethodKind::channels));
  row->run(model, context);
  // Other batches than the scores saw.
  if (bn_batches > 0 && !row->recalibrates_itself)
    recalibrate_batch_norm(model, draw_batches(context, bn_batches, context.seed + 1, "--bn-recalibrate"));
}

}  // namespace shears::prune
