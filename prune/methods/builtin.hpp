// The built-in rows of the method and importance tables (prune/methods/registry.hpp): each file of this
// folder defines the `run` (or `make`) functions of one family; methods.cpp lists them.
#pragma once
#include "prune/methods/registry.hpp"

namespace shears::prune::builtin {

// The prunable parameters of the context's scope, after checking its target.
std::vector<std::string> checked_names(const nn::Module& model, const PruneContext& context);

// One-shot scores, pruned to the target by masks_from_scores (scores.cpp).
void magnitude(nn::Module& model, const PruneContext& context);
void random(nn::Module& model, const PruneContext& context);
void snip(nn::Module& model, const PruneContext& context);
void grasp(nn::Module& model, const PruneContext& context);
void synflow(nn::Module& model, const PruneContext& context);
// The mask ODE (spode.cpp).
void spode(nn::Module& model, const PruneContext& context);
// The stage driver of prune/algorithms/swap.hpp: swap, lr, woodfisher, and magnitude in stages (stages.cpp).
void staged(nn::Module& model, const PruneContext& context, StageMethod method);
// Channel removal and Intra-Fusion over the dependency groups (channels.cpp).
void remove_channels(nn::Module& model, const PruneContext& context);
void intra_fusion(nn::Module& model, const PruneContext& context);
Importance taylor(nn::Module& model, const PruneContext& context);

// The official protocols of the methods that have an official code (protocols.cpp; the values
// and their sources are tabled in docs/algorithms/).
Protocol swap_protocol();        // swap and lr: one class of the official SWAP code
Protocol woodfisher_protocol();  // the WoodFisher baseline of the same code base
Protocol spode_protocol();
Protocol intra_fusion_protocol();
Protocol sfw_protocol();  // a training setup: the flags of shears train

}  // namespace shears::prune::builtin
