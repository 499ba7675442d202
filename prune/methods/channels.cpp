// Structured methods as registry rows: plain channel removal, and Intra-Fusion (or its "default
// pruning" baseline and one-group protocol), both over the dependency groups; and the importances
// that need more than the weights (Taylor reads gradients).
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "prune/bn_fold.hpp"
#include "prune/methods/builtin.hpp"
#include "prune/structured.hpp"

namespace shears::prune::builtin {

namespace {

// A dotted module path as a regex matching exactly itself.
std::string literal(const std::string& path) {
  std::string out;
  for (char ch : path) {
    if (ch == '.') out += '\\';
    out += ch;
  }
  return out;
}

// With channels, the scope's exclusions name modules: the groups of those layers keep their channels.
std::vector<std::string> ignored_modules(const nn::Module& model, const Scope& scope) {
  SHEARS_CHECK(scope.include.empty(), "--scope-include",
               "selects weights for unstructured pruning; with --structured every channel group is prunable unless "
               "--scope-exclude names its layers");
  std::vector<std::string> ignored = scope.exclude;
  if (scope.exclude_first_and_last) {
    std::vector<std::string> all = prunable_parameters(model);
    SHEARS_CHECK(!all.empty(), "--exclude-first-last", "the model has no Conv2d or Linear layer");
    for (const std::string* name : {&all.front(), &all.back()})
      ignored.push_back(literal(name->substr(0, name->rfind('.'))));
  }
  return ignored;
}

ChannelTarget channel_target(const PruneContext& context) {
  return {context.target.sparsity, context.target.distribution, context.target.max_layer_sparsity,
          context.options.channels.round_to};
}

// Intra-Fusion, its "default pruning" baseline (fold_bn) and the one-group protocol all work on
// the BN-folded model; importances are then computed after folding
// (docs/algorithms/intra-fusion.md#protocols).
void prune_folded(nn::Module& model, const PruneContext& context, ChannelMerge merge) {
  const ChannelOptions& o = context.options.channels;
  std::vector<std::string> ignored = ignored_modules(model, context.scope);
  SHEARS_CHECK(!(o.group_index >= 0 && !ignored.empty()), "--group-index",
               "prunes one group; it cannot be combined with --scope-exclude or --exclude-first-last");
  const ChannelImportance& importance = find_importance(o.importance);
  SHEARS_CHECK(!importance.reads_batch_norm, "--importance " + importance.name,
               "reads BatchNorm scales, which folding turns into ones: use it with --method remove and without "
               "--fold-bn or --group-index");
  std::vector<FoldedPair> folded = fold_batch_norms(model, context.input_shape);
  IntraFusionOptions options = o.fusion;
  options.importance = importance.make(model, context);
  options.merge = merge;
  if (o.group_index >= 0)
    intra_fusion_prune(model, context.input_shape, o.group_index, context.target.sparsity, options);
  else
    intra_fusion_prune_network(model, context.input_shape, channel_target(context), options, ignored);
  restore_bias_free_producers(model, folded);  // the result reloads as its architecture
}

}  // namespace

void remove_channels(nn::Module& model, const PruneContext& context) {
  const ChannelOptions& o = context.options.channels;
  if (o.fold_bn || o.group_index >= 0) return prune_folded(model, context, ChannelMerge::select);
  std::vector<std::string> ignored = ignored_modules(model, context.scope);
  Importance importance = find_importance(o.importance).make(model, context);
  prune_channels(model, context.input_shape, importance, channel_target(context), ignored);
}

void intra_fusion(nn::Module& model, const PruneContext& context) { prune_folded(model, context, ChannelMerge::fuse); }

// Taylor scores read the gradients held by the parameters: summed over the scoring batches in
// eval mode (running BN statistics; docs/algorithms/intra-fusion.md#the-official-code-and-shears).
Importance taylor(nn::Module& model, const PruneContext& context) {
  const bool was_training = model.is_training();
  model.eval();
  model.zero_grad();
  for (const Batch& batch : draw_batches(context, context.options.score_batches, context.seed, "--score-batches"))
    cross_entropy(model(batch.images), batch.labels).backward();
  model.train(was_training);
  return taylor_importance();
}

}  // namespace shears::prune::builtin
