#include "train/run_log.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/machine.hpp"
#include "train/state.hpp"

namespace shears::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSummaryHeader =
    "epoch,train_loss,train_top1,val_loss,val_top1,test_loss,test_top1,test_top5,lr,seconds,images_per_second";

// Keeps the header and the rows (summary.csv) or events (events.jsonl) of the first `epochs` epochs.
void keep_logged_epochs(const fs::path& path, int64_t epochs) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);  // a CSV row is not JSON ...
    const int64_t epoch = event.is_object() && event.contains("epoch") && event["epoch"].is_number_integer()
                              ? event["epoch"].get<int64_t>()
                              : std::atoll(line.c_str());  // ... but starts with its epoch (the header: 0)
    if (epoch <= epochs) kept += line + '\n';
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

std::string summary_row(const EpochRecord& r) {
  char val_cells[64] = ",", row[320];
  if (r.val) std::snprintf(val_cells, sizeof val_cells, "%.6f,%.4f", r.val->loss, r.val->top1);
  std::snprintf(row, sizeof row, "%lld,%.6f,%.4f,%s,%.6f,%.4f,%.4f,%.8g,%.3f,%.1f", (long long)r.epoch, r.train_loss,
                r.train_top1, val_cells, r.test.loss, r.test.top1, r.test.top5, r.lr, r.seconds, r.images_per_second);
  return row;
}

nlohmann::json epoch_event(const EpochRecord& r) {
  nlohmann::json event = {{"event", "epoch"},           {"epoch", r.epoch},
                          {"train_loss", r.train_loss}, {"train_top1", r.train_top1},
                          {"test_loss", r.test.loss},   {"test_top1", r.test.top1},
                          {"test_top5", r.test.top5},   {"lr", r.lr},
                          {"seconds", r.seconds}};
  if (r.val) event["val_loss"] = r.val->loss, event["val_top1"] = r.val->top1;
  if (r.skipped_steps) event["skipped_steps"] = r.skipped_steps;
  if (r.ranks > 1) event["ranks"] = r.ranks, event["allreduce_ms_per_step"] = r.allreduce_ms;
  return event;
}

}  // namespace

RunLog::RunLog(fs::path dir, bool writer, int64_t first_epoch, double best_top1)
    : dir_(std::move(dir)), writer_(writer), best_top1_(best_top1) {
  if (!writer_) return;
  if (first_epoch > 0) {
    for (const char* log : {"summary.csv", "events.jsonl"}) keep_logged_epochs(dir_ / log, first_epoch);
  } else {
    std::ofstream(dir_ / "summary.csv") << kSummaryHeader << '\n';
    std::ofstream(dir_ / "events.jsonl").flush();
    fs::remove(dir_ / "machine.jsonl");
  }
  append_machine_record(dir_ / "machine.jsonl");  // each invocation: a resumed run may move
}

void RunLog::append(const std::string& file, const std::string& line) const {
  std::ofstream out(dir_ / file, std::ios::app);
  out << line << '\n';
  SHEARS_CHECK(out.good(), (dir_ / file).string(), "cannot append to the run log");
}

bool RunLog::record(const EpochRecord& r, const nn::Module& model, const optim::Optimizer& opt,
                    const std::vector<double>& epoch_losses, const std::string& config) {
  const EvalResult& chosen_on = r.val ? *r.val : r.test;
  const bool best = std::isfinite(chosen_on.loss) && chosen_on.top1 > best_top1_;
  if (best) best_top1_ = chosen_on.top1;
  if (!writer_) return best;
  append("summary.csv", summary_row(r));
  append("events.jsonl", epoch_event(r).dump());
  const std::map<std::string, std::string> meta{{"epoch", std::to_string(r.epoch)},
                                                {"test_top1", std::to_string(r.test.top1)}};
  model.save_checkpoint((dir_ / "last.safetensors").string(), meta);
  if (best) model.save_checkpoint((dir_ / "best.safetensors").string(), meta);
  save_training_state(dir_ / "last.optim.safetensors", model, opt, r.epoch - 1, best_top1_, epoch_losses, config);
  return best;
}

void RunLog::note_output_error(int64_t epoch) {
  if (output_error_noted_ || !writer_ || !(std::ferror(stdout) || std::ferror(stderr))) return;
  output_error_noted_ = true;
  append("events.jsonl", nlohmann::json{{"event", "output_error"},
                                        {"epoch", epoch},
                                        {"message",
                                         "standard output or error could not be written (closed pipe or full "
                                         "disk); the run goes on, its figures are in summary.csv and here"}}
                             .dump());
}

}  // namespace shears::train
