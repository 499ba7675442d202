// One-shot scores: each weight gets a score, and the lowest go (masks_from_scores), globally or
// per layer as the target says.
#include "core/error.hpp"
#include "prune/masks.hpp"
#include "prune/methods/builtin.hpp"

namespace shears::prune::builtin {

namespace {

using Scorer = std::function<NamedTensors(const std::vector<std::string>& names)>;

void prune_by_scores(nn::Module& model, const PruneContext& context, const Scorer& score) {
  const std::vector<std::string> names = checked_names(model, context);
  NamedTensors scores = score(names);
  mark_pruned(model, scores);
  apply_masks(model, masks_from_scores(scores, context.target));
}

}  // namespace

void magnitude(nn::Module& model, const PruneContext& context) {
  if (context.options.swap.stages > 1) return staged(model, context, StageMethod::magnitude);
  prune_by_scores(model, context,
                  [&](const std::vector<std::string>& names) { return magnitude_scores(model, names); });
}

void random(nn::Module& model, const PruneContext& context) {
  Generator gen(context.seed);
  prune_by_scores(model, context,
                  [&](const std::vector<std::string>& names) { return random_scores(model, names, gen); });
}

void snip(nn::Module& model, const PruneContext& context) {
  prune_by_scores(model, context, [&](const std::vector<std::string>& names) {
    return snip_scores(model, names,
                       draw_batches(context, context.options.score_batches, context.seed, "--score-batches"));
  });
}

void grasp(nn::Module& model, const PruneContext& context) {
  prune_by_scores(model, context, [&](const std::vector<std::string>& names) {
    return grasp_scores(model, names,
                        draw_batches(context, context.options.score_batches, context.seed, "--score-batches"));
  });
}

// SynFlow prunes iteratively on its own: its masks come whole.
void synflow(nn::Module& model, const PruneContext& context) {
  const std::vector<std::string> names = checked_names(model, context);
  apply_masks(model, synflow_masks(model, names, context.input_shape, context.target, context.options.synflow));
}

}  // namespace shears::prune::builtin
