#include "train/state.hpp"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>
#include <string_view>

#include "core/config_file.hpp"
#include "core/error.hpp"
#include "nn/safetensors.hpp"

namespace shears::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWeights = "model/";

}  // namespace

void save_training_state(const fs::path& path, const nn::Module& model, const optim::Optimizer& opt, int64_t epoch,
                         double best_top1, const std::vector<double>& epoch_losses, const std::string& config) {
  std::vector<safetensors::Entry> entries;
  for (safetensors::Entry& e : model.state_dict()) entries.push_back({kWeights + e.name, e.value, e.dtype});
  for (const auto& [name, t] : opt.state_dict()) entries.push_back({name, t, safetensors::Dtype::F32});
  std::string losses;
  for (double l : epoch_losses) {
    if (!losses.empty()) losses += ',';
    losses += detail::concat(std::setprecision(17), l);
  }
  safetensors::save(path.string(), entries,
                    {{"optimizer", opt.name()},
                     {"epoch", std::to_string(epoch)},
                     {"best_top1", std::to_string(best_top1)},
                     {"epoch_losses", losses},
                     {"config", config}});
}

namespace {

// A state saved by another optimizer, or by a run of other settings, would continue a different
// run: refused with what differs.
void check_same_run(const fs::path& path, const safetensors::File& state, const optim::Optimizer& opt,
                    const std::string& config, const std::set<std::string>& may_change) {
  auto saved = [&](const char* key) {
    auto it = state.metadata.find(key);
    return it == state.metadata.end() ? std::string() : it->second;
  };
  SHEARS_CHECK(saved("optimizer") == opt.name(), path.string(), "the training state was saved by the optimizer '",
               saved("optimizer"), "', this run uses '", opt.name(), "': --resume continues the same run");
  if (saved("config").empty()) {
    std::printf("note: %s was written by an older shears and does not record its settings: they are not checked\n",
                path.c_str());
    return;
  }
  const std::vector<std::string> differ =
      config::differences(config::parse(saved("config"), path.string() + " (config)"),
                          config::parse(config, "the command line"), may_change);
  std::string list;
  for (const std::string& d : differ) list += "\n  " + d;
  SHEARS_CHECK(differ.empty(), path.string(),
               "the training state belongs to a run with other settings (saved -> now):", list,
               "\n--resume continues the same run: give its settings (its config.toml works with --config)");
}

}  // namespace

TrainingProgress load_training_state(const fs::path& path, nn::Module& model, optim::Optimizer& opt,
                                     const std::string& config, const std::set<std::string>& may_change) {
  safetensors::File s = safetensors::load(path.string());
  check_same_run(path, s, opt, config, may_change);
  std::vector<safetensors::Entry> weights;
  optim::NamedTensors state;
  for (safetensors::Entry& e : s.tensors) {
    if (e.name.starts_with(kWeights))
      weights.push_back({e.name.substr(std::string_view(kWeights).size()), e.value, e.dtype});
    else
      state.emplace_back(e.name, e.value);
  }
  SHEARS_CHECK(!weights.empty(), path.string(), "no weights (tensors named ", kWeights,
               "...) in the training state: written by an older shears? Start the run again");
  try {
    model.load_state_dict(weights);
    opt.load_state_dict(state);
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what());
  }
  auto number = [&](const char* key) {
    auto it = s.metadata.find(key);
    char* end = nullptr;
    const double v = it == s.metadata.end() ? NAN : std::strtod(it->second.c_str(), &end);
    SHEARS_CHECK(std::isfinite(v) && *end == '\0', path.string(), "metadata '", key, "' should be a number, got '",
                 it == s.metadata.end() ? "<missing>" : it->second, "'");
    return v;
  };
  const double epoch = number("epoch");
  SHEARS_CHECK(epoch >= 0 && epoch < 1e9 && std::trunc(epoch) == epoch, path.string(), "metadata 'epoch' should be ",
               "the index of the last finished epoch, got ", epoch);
  TrainingProgress progress{static_cast<int64_t>(epoch) + 1, number("best_top1"), {}};
  auto losses = s.metadata.find("epoch_losses");
  if (losses != s.metadata.end() && !losses->second.empty()) {
    std::stringstream list(losses->second);
    for (std::string item; std::getline(list, item, ',');) {
      char* end = nullptr;
      progress.epoch_losses.push_back(std::strtod(item.c_str(), &end));
      SHEARS_CHECK(*end == '\0' && !item.empty(), path.string(), "metadata 'epoch_losses' should list numbers, got '",
                   item, "'");
    }
  }
  return progress;
}

}  // namespace shears::train
