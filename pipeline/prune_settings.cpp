// The pruning settings to the pruning context (pipeline/prune_settings.hpp).
#include "pipeline/prune_settings.hpp"

#include "core/error.hpp"
#include "data/loader.hpp"
#include "nn/sparsify.hpp"

namespace shears::pipeline {

prune::Distribution parse_distribution(const std::string& name) {
  if (name == "global") return prune::Distribution::global;
  if (name == "per-layer") return prune::Distribution::per_layer;
  throw Error("--distribution: unknown value '" + name + "'; expected global or per-layer");
}

namespace {

prune::FusionMass parse_mass(const std::string& flag, const std::string& name) {
  if (name == "uniform") return prune::FusionMass::uniform;
  if (name == "importance") return prune::FusionMass::importance;
  if (name == "radical") return prune::FusionMass::radical;
  throw Error(flag + ": unknown mass '" + name + "'; expected uniform, importance or radical");
}

prune::FusionNormalization parse_normalization(const std::string& name) {
  if (name == "code") return prune::FusionNormalization::code;
  if (name == "function_preserving") return prune::FusionNormalization::function_preserving;
  throw Error("--fusion-normalization: unknown value '" + name + "'; expected code or function_preserving");
}

// The staged methods' settings; the solver's names are checked here, the counts by the flags' ranges.
prune::SwapPruneOptions swap_options(const PruneSpec& spec) {
  SHEARS_CHECK(spec.swap_solver == "principled" || spec.swap_solver == "code", "--solver",
               "expected principled or code, got '", spec.swap_solver, "'");
  SHEARS_CHECK(spec.swap_direction == "code" || spec.swap_direction == "exact", "--direction",
               "expected code or exact, got '", spec.swap_direction, "'");
  SHEARS_CHECK(spec.ewr_start == "lr" || spec.ewr_start == "magnitude", "--ewr-start",
               "expected lr or magnitude, got '", spec.ewr_start, "'");
  prune::SwapPruneOptions o;
  o.swap.epsilon = spec.swap_eps;
  o.swap.relative_epsilon = spec.swap_eps_relative;
  o.swap.sinkhorn_iterations = spec.sinkhorn_iters;
  o.swap.sinkhorn_tolerance = spec.sinkhorn_tol;
  o.swap.sinkhorn_overrelaxation = !spec.sinkhorn_plain;
  SHEARS_CHECK(spec.sinkhorn_norm == "l1" || spec.sinkhorn_norm == "l2", "--sinkhorn-norm", "expected l1 or l2, got '",
               spec.sinkhorn_norm, "'");
  o.swap.sinkhorn_l2_stop = spec.sinkhorn_norm == "l2";
  o.swap.solver = spec.swap_solver == "code" ? prune::Solver::code : prune::Solver::principled;
  o.swap.direction = spec.swap_direction == "exact" ? prune::Direction::exact : prune::Direction::code;
  o.swap.update_weights = spec.update_weights;
  o.swap.inner_iters = spec.inner_iters >= 0 ? spec.inner_iters : o.swap.solver == prune::Solver::code ? 1 : 20;
  o.swap.resolve_iters = spec.resolve_iters;
  o.swap.lr_start = spec.ewr_start == "lr";
  o.woodfisher.block = spec.wf_block;
  o.woodfisher.damp = spec.wf_damp;
  o.woodfisher.update_weights = spec.wf_update;
  o.lambda = spec.swap_lambda;
  o.stages = spec.swap_stages;
  o.noise_scale = spec.grad_noise;
  o.noise_prop = spec.grad_noise_prop;
  return o;
}

prune::ChannelOptions channel_options(const PruneSpec& spec) {
  prune::ChannelOptions o;
  o.importance = spec.importance;
  o.fold_bn = spec.fold_bn;
  o.group_index = spec.group_index;
  o.round_to = spec.round_to;
  o.fusion.source_mass = parse_mass("--fusion-source-mass", spec.fusion_source_mass);
  o.fusion.target_mass = parse_mass("--fusion-target-mass", spec.fusion_target_mass);
  o.fusion.p = spec.fusion_p;
  o.fusion.normalization = parse_normalization(spec.fusion_normalization);
  o.fusion.preserve_dimensions = spec.dimensionality_preserving;
  return o;
}

}  // namespace

prune::PruneContext prune_context(const PruneSpec& spec, const data::OpenedData& d,
                                  const train::FineTuneHooks& stage_hooks,
                                  std::function<void(const std::string&)> log) {
  prune::PruneContext context;
  context.target = {spec.sparsity, parse_distribution(spec.distribution), spec.max_layer_sparsity, spec.keep_floor};
  context.scope = spec.scope;
  context.input_shape = data::image_shape(d);
  if (d.splits.train) context.training_batches = data::batch_factory(d.splits.train, d.train_transform);
  context.batch_size = spec.batch_size;
  context.seed = spec.seed;
  context.options.score_batches = spec.score_batches;
  context.options.synflow = {spec.synflow_rounds};
  context.options.spode.steps = spec.spode_steps;
  context.options.spode.r = spec.spode_radius;
  context.options.swap_samples = spec.swap_samples;
  context.options.swap = swap_options(spec);
  context.options.channels = channel_options(spec);
  if (spec.stage_finetune_epochs > 0)
    context.between_stages = [&d, spec, stage_hooks](nn::Module& model, int64_t, uint64_t seed) {
      nn::SparsifyOptions sparse;  // the stage's masks are fixed while it fine-tunes
      sparse.mode = nn::parse_sparse_mode(spec.sparse);
      nn::sparsify(model, sparse);
      train::FineTuneOptions ft = spec.finetune;
      ft.epochs = spec.stage_finetune_epochs;
      train::fine_tune(model, ft, data::training_images(d, "--stage-finetune-epochs"), d.train_transform, seed,
                       stage_hooks);
    };
  context.log = std::move(log);
  context.trace_folder = spec.trace_folder;
  return context;
}

void check_stages(const std::string& method, bool structured, int64_t stages) {
  if (stages == 1) return;
  std::string staged;
  for (const prune::PruningMethod& m : prune::pruning_methods())
    if (m.staged) staged += (staged.empty() ? "" : ", ") + m.name;
  SHEARS_CHECK(!structured, "--stages", stages, " would be ignored: channel pruning runs in one shot (", staged,
               " run in stages)");
  SHEARS_CHECK(prune::find_method(method, prune::MethodKind::masks).staged, "--stages", stages,
               " would be ignored: ", method, " runs in one shot (", staged, " run in stages)");
}

void check_method(const PruneSpec& spec) {
  SHEARS_CHECK(spec.score_batches > 0 && spec.batch_size > 0, "--score-batches", "and --batch-size must be positive");
  SHEARS_CHECK(spec.sparsity >= 0.0 && spec.sparsity < 1.0, "--sparsity", "expected a fraction in [0, 1), got ",
               spec.sparsity);
  if (spec.structured) {
    SHEARS_CHECK(spec.method == "remove" || spec.method == "intrafusion", "--method",
                 "with --structured is remove or intrafusion (the channel criterion is --importance), got '",
                 spec.method, "'");
    prune::find_importance(spec.importance);
  } else {
    prune::find_method(spec.method, prune::MethodKind::masks);
  }
  check_stages(spec.method, spec.structured, spec.swap_stages);
}

}  // namespace shears::pipeline
