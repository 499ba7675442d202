// SpODE as a registry row: the ODE on fresh training batches, its per-step trace kept beside the
// result (implicit regrowth is one of the paper's claims: the trace is the evidence).
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "prune/methods/builtin.hpp"

namespace shears::prune::builtin {

namespace {

void write_trace(const std::filesystem::path& path, const std::vector<SpodeStep>& steps) {
  std::ofstream trace(path);
  trace << "step,dt,loss,soft_sparsity,polarised_sparsity,increased,regrown\n";
  for (const SpodeStep& t : steps)
    trace << t.step << ',' << t.dt << ',' << t.loss << ',' << t.soft_sparsity << ',' << t.polarised_sparsity << ','
          << t.increased << ',' << t.regrown << '\n';
  SHEARS_CHECK(trace.good(), path.string(), "cannot write the SpODE trace");
}

}  // namespace

void spode(nn::Module& model, const PruneContext& context) {
  const std::vector<std::string> names = checked_names(model, context);
  BatchSource batches = open_batches(context, {context.batch_size, context.seed, true, 1, "spode_prune"});
  SpodeResult result = spode_prune(model, names, context.target, batches, context.options.spode);
  if (context.trace_folder.empty()) return;
  std::filesystem::create_directories(context.trace_folder);
  write_trace(std::filesystem::path(context.trace_folder) / "spode_trace.csv", result.trace);
}

}  // namespace shears::prune::builtin
