// The pruning methods as a registry: one row per method (its name, its kind, a line of help and
// `run`), and one row per channel importance for structured pruning. `shears prune` and `sweep`
// take their method lists, help text and validation from these tables, so a method added
// here, or registered by a program through register_method, is known to both.
// docs/extending.md#how-to-add-a-pruning-method walks through adding one.
//
//   prune::PruneContext ctx;
//   ctx.target.sparsity = 0.9;
//   ctx.input_shape = {1, 1, 28, 28};
//   ctx.training_batches = [&](const prune::BatchRequest& r) { return my_batches(r); };
//   prune::prune_model(model, "snip", ctx);
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/batch.hpp"
#include "nn/module.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/algorithms/intra_fusion.hpp"
#include "prune/algorithms/spode.hpp"
#include "prune/algorithms/swap.hpp"
#include "prune/importance.hpp"
#include "prune/scope.hpp"

namespace shears::prune {

// masks: zeros in place, shapes kept; channels: whole channels removed (or fused); training: the
// method is an optimizer (SFW) and prunes while a model trains, not after.
enum class MethodKind { masks, channels, training };

// Structured pruning: which channels go (the importance), and how.
struct ChannelOptions {
  std::string importance = "l1";  // a row of channel_importances()
  bool fold_bn = false;           // fold BatchNorms into their producers first (Intra-Fusion's baseline)
  int64_t group_index = -1;       // >= 0: only this group, counted from the output
  int64_t round_to = 1;           // keep a multiple of this many channels
  IntraFusionOptions fusion;      // importance and merge are set by the method
};

// The settings of the built-in methods; each reads its own.
struct MethodOptions {
  int64_t score_batches = 1;  // snip, grasp, taylor: training batches scored
  SynflowOptions synflow;
  SpodeOptions spode;
  int64_t swap_samples = 1000;  // swap, lr, woodfisher: samples per stage
  SwapPruneOptions swap;        // .stages > 1 makes magnitude gradual too
  ChannelOptions channels;
};

// What a method gets besides the model.
struct PruneContext {
  SparsityTarget target;  // masks: of the prunable weights; channels: of each group's channels
  Scope scope;            // masks: which parameters are prunable; channels: exclude names modules whose groups stay
  Shape input_shape;      // one image, {1, C, H, W}
  TrainingBatches training_batches;  // for data-dependent methods; may be empty for the others
  int64_t batch_size = 128;
  uint64_t seed = 0;  // random scores and the choice of batches
  MethodOptions options;
  // Gradual methods: after every stage but the last (fine-tuning), with seed + stage.
  std::function<void(nn::Module&, int64_t stage, uint64_t seed)> between_stages;
  std::function<void(const std::string&)> log;                     // a line per stage; empty: quiet
  std::string trace_folder;  // spode_trace.csv / swap_trace.csv are written here; empty: none
};

// A method's official protocol: what its official code's scripts set, as settings of `shears
// prune` (of `shears train` for SFW; flag names without the dashes, which are also the config
// keys) and their values, for the model about to be pruned (null before training). Throws naming
// the models the scripts cover when this one is not.
using ProtocolSettings = std::vector<std::pair<std::string, std::string>>;
struct Protocol {
  std::string source;  // the official code, as docs/algorithms/ cite it
  std::function<ProtocolSettings(const nn::Module* model)> settings;
};

struct PruningMethod {
  std::string name;
  MethodKind kind = MethodKind::masks;
  std::string help;                                           // one line
  std::function<void(nn::Module&, const PruneContext&)> run;  // empty for training-time methods
  bool recalibrates_itself = false;                           // re-estimates BatchNorm statistics on its own batches
  std::optional<Protocol> official = {};                      // none: the method has no official code to follow
  bool staged = false;  // runs in stages of the cubic schedule when options.swap.stages > 1
};

// The built-in methods (an explicit table), then those registered, in that order.
const std::vector<PruningMethod>& pruning_methods();
// Adds a method; throws if its name is taken or it has no `run` but is not a training-time one.
void register_method(PruningMethod method);
// The row of `name`; throws naming the methods of `kind` when there is none of that kind.
const PruningMethod& find_method(const std::string& name, MethodKind kind, const std::string& flag = "--method");
// "a, b, c or d": the names of one kind, for help text and messages.
std::string method_names(MethodKind kind, const std::string& last_separator = " or ");

struct ChannelImportance {
  std::string name;
  std::string help;
  bool reads_batch_norm = false;  // meaningless once BatchNorms are folded
  std::function<Importance(nn::Module&, const PruneContext&)> make;
};
const std::vector<ChannelImportance>& channel_importances();
void register_importance(ChannelImportance importance);
const ChannelImportance& find_importance(const std::string& name, const std::string& flag = "--importance");
std::string importance_names(const std::string& last_separator = " or ");

// Runs the method, then re-estimates BatchNorm statistics on `bn_batches` fresh training batches
// when asked (docs/algorithms/baselines.md#bn-recalibration; SpODE does it on its own batches).
void prune_model(nn::Module& model, const std::string& method, const PruneContext& context, int64_t bn_batches = 0);

// context.training_batches(request), refused naming request.who when the context has none.
BatchSource open_batches(const PruneContext& context, const BatchRequest& request);
// `count` batches drawn from context.training_batches at (batch_size, seed).
std::vector<Batch> draw_batches(const PruneContext& context, int64_t count, uint64_t seed, const std::string& who);

}  // namespace shears::prune
