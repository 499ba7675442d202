// The flags `shears prune` and `shears sweep` share, and fine-tuning's display.
#include "apps/prune_flags.hpp"

#include <cstdio>
#include <memory>

namespace shears::app {

void add_prune_flags(CLI::App& cli, PruneSpec& s) {
  cli.add_option("--distribution", s.distribution, "global (one ranking) or per-layer (same sparsity per tensor)")
      ->capture_default_str();
  cli.add_option("--scope-include", s.scope.include, "also prune parameters matching these regexes");
  cli.add_option("--scope-exclude", s.scope.exclude,
                 "leave parameters matching these regexes dense (with --structured: module paths)");
  cli.add_option("--sparse", s.sparse,
                 "run the pruned model's sparse layers on the sparse kernels: auto (where the density table says "
                 "it is faster), on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cli.add_flag("--exclude-first-last", s.scope.exclude_first_and_last, "keep the stem and the classifier dense");
  cli.add_option("--max-layer-sparsity", s.max_layer_sparsity, "no tensor (or channel group) loses more than this")
      ->capture_default_str();
  cli.add_flag("--keep-floor", s.keep_floor,
               "keep floor((1-s)*d) weights as the official codes do (default: prune floor(s*d))");
  cli.add_flag("--structured", s.structured, "remove whole channels (--sparsity is then a channel ratio)");
  cli.add_option("--importance", s.importance, "with --structured: " + prune::importance_names())
      ->capture_default_str();
  cli.add_flag("--fold-bn", s.fold_bn,
               "with --structured: fold BatchNorms into their producers first (Intra-Fusion's default pruning)");
  cli.add_option("--group-index", s.group_index,
                 "with --structured: prune only this group, counted from the output (0 = nearest the logits)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
  cli.add_option("--fusion-source-mass", s.fusion_source_mass, "intrafusion: uniform, importance or radical")
      ->capture_default_str();
  cli.add_option("--fusion-target-mass", s.fusion_target_mass, "intrafusion: uniform, importance or radical")
      ->capture_default_str();
  cli.add_option("--fusion-p", s.fusion_p, "intrafusion: the cost's l_p norm (>= 1)")->capture_default_str();
  cli.add_option("--fusion-normalization", s.fusion_normalization, "intrafusion: code or function_preserving")
      ->capture_default_str();
  cli.add_flag("--dimensionality-preserving", s.dimensionality_preserving,
               "intrafusion/--fold-bn: zero the removed channels instead of cutting them (widths kept)");
  cli.add_option("--round-to", s.round_to, "with --structured: keep a multiple of this many channels")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cli.add_option("--score-batches", s.score_batches, "training batches scored by snip, grasp and taylor")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--bn-recalibrate", s.bn_recalibrate,
                 "after pruning, re-estimate BatchNorm statistics on N training batches (0: keep the dense ones)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--synflow-rounds", s.synflow_rounds)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--spode-steps", s.spode_steps, "spode: steps N of the mask ODE")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  cli.add_option("--spode-radius", s.spode_radius, "spode: step radius over the smallest feasible (> 1)")
      ->capture_default_str();
  cli.add_option("--samples", s.swap_samples, "swap/lr/woodfisher: training samples n of G per stage")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli.add_option("--stages", s.swap_stages, "swap/lr/woodfisher/magnitude: stages of the cubic schedule (1: one-shot)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cli.add_option("--stage-finetune-epochs", s.stage_finetune_epochs,
                 "with --stages > 1: fine-tuning epochs after every stage but the last (with --lr, --momentum, --wd)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--eps", s.swap_eps, "swap: entropic regularisation (<= 1e-10: exact OT; inf: product plan)")
      ->capture_default_str();
  cli.add_flag("--eps-relative", s.swap_eps_relative, "swap: --eps is a multiple of mean(M) at each plan");
  cli.add_option("--sinkhorn-iters", s.sinkhorn_iters, "swap: Sinkhorn iteration cap")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  cli.add_option("--sinkhorn-tol", s.sinkhorn_tol, "swap: Sinkhorn stop on the row-marginal error (L1)")
      ->capture_default_str();
  cli.add_flag("--sinkhorn-plain", s.sinkhorn_plain,
               "swap: plain Sinkhorn iterations as the reference (default: over-relaxed, same plan, fewer iterations)");
  cli.add_option("--sinkhorn-norm", s.sinkhorn_norm, "swap: the stop's norm of the marginal error, l1 or l2 (POT's)")
      ->capture_default_str();
  cli.add_option("--lambda", s.swap_lambda, "swap/lr: ridge weight")->capture_default_str();
  cli.add_option("--solver", s.swap_solver, "swap/lr: principled (IHT on the objective) or code (the official step)")
      ->capture_default_str();
  cli.add_option("--direction", s.swap_direction, "swap --solver code: code or exact")->capture_default_str();
  cli.add_option("--ewr-start", s.ewr_start, "swap principled: start from the lr solution or from magnitude")
      ->capture_default_str();
  cli.add_flag("--update-weights", s.update_weights, "swap/lr --solver code: write the step's values");
  cli.add_option("--inner-iters", s.inner_iters, "swap/lr: IHT steps per stage (-1: 1 for code, 20 for principled)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{-1}, int64_t{1000000000}));
  cli.add_option("--resolve-iters", s.resolve_iters,
                 "swap/lr principled: conjugate-gradient steps of the re-solve on the support (0: plain IHT)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  cli.add_option("--grad-noise", s.grad_noise, "swap/lr/woodfisher: noise scale c of the per-sample gradients (0: off)")
      ->capture_default_str();
  cli.add_option("--grad-noise-prop", s.grad_noise_prop, "fraction of each gradient's entries that get noise")
      ->capture_default_str();
  cli.add_option("--wf-block", s.wf_block, "woodfisher: block size B of the Fisher")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cli.add_option("--wf-damp", s.wf_damp, "woodfisher: damping delta")->capture_default_str();
  cli.add_option("--wf-update", s.wf_update, "woodfisher: apply the OBS correction to the surviving weights")
      ->capture_default_str();
}

void check_structured_flags(const CLI::App& cli, const PruneSpec& spec) {
  for (const char* flag : {"--importance", "--fold-bn", "--group-index", "--round-to"})
    SHEARS_CHECK(spec.structured || !cli.count(flag), flag,
                 "applies to channel pruning (--structured); without it the flag would be ignored");
}

void add_finetune_flags(CLI::App& cli, FineTune& ft) {
  cli.add_option("--finetune-epochs", ft.epochs, "fine-tune with the masks fixed (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cli.add_option("--lr", ft.lr, "fine-tuning learning rate (cosine-decayed unless --finetune-sched constant)")
      ->capture_default_str();
  cli.add_option_function<std::string>(
         "--finetune-sched", [&ft](const std::string& name) { ft.cosine = name == "cosine"; },
         "fine-tuning lr: cosine (decays to 0) or constant")
      ->check(CLI::IsMember({"cosine", "constant"}))
      ->default_str("cosine");
  cli.add_option("--momentum", ft.momentum)->capture_default_str();
  cli.add_option("--weight-decay,--wd", ft.weight_decay)->capture_default_str();
}

prune::PruneContext prune_context(const PruneSpec& spec, const OpenedData& d) {
  return pipeline::prune_context(spec, d, fine_tune_display(spec.stage_finetune_epochs),
                                 [](const std::string& line) { std::printf("%s\n", line.c_str()); });
}

train::FineTuneHooks fine_tune_display(int64_t epochs) {
  auto progress = std::make_shared<std::unique_ptr<Progress>>();
  train::FineTuneHooks hooks;
  hooks.loop.epoch_start = [progress, epochs](int64_t epoch, int64_t steps) {
    *progress =
        std::make_unique<Progress>("fine-tune " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), steps);
  };
  hooks.loop.step = [progress](const train::EpochStats& s) {
    char stats[64];
    std::snprintf(stats, sizeof stats, "loss %.4f acc %.2f%%", s.mean_loss(), s.top1());
    (*progress)->update(s.steps, stats);
  };
  hooks.loop.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  hooks.epoch_end = [progress, epochs](const train::EpochStats& s) {
    (*progress)->finish();
    std::printf("fine-tune epoch %lld/%lld  train loss %.4f  top-1 %.2f%%\n", (long long)s.epoch + 1, (long long)epochs,
                s.mean_loss(), s.top1());
  };
  return hooks;
}

}  // namespace shears::app
