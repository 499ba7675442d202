// The `shears` command end to end (it is run as a separate process, as users run it): a short
// training writes its run folder, resuming reproduces an uninterrupted run, user mistakes give
// one clear message and a non-zero exit.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;

using Result = test::CommandResult;
using test::run_shears;
const auto& read_file = test::read_text;

// summary.csv without the timing columns (seconds, images/s).
std::vector<std::string> summary_rows(const fs::path& dir) {
  std::vector<std::string> rows;
  std::istringstream in(read_file(dir / "summary.csv"));
  for (std::string line; std::getline(in, line);) rows.push_back(line.substr(0, line.rfind(',', line.rfind(',') - 1)));
  return rows;
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("shears_cli_" + name);
  fs::remove_all(dir);
  return dir;
}

const std::string kQuick = "train --model mlpnet --data synthetic --epochs 3 --batch-size 32 --lr 0.05 --workers 1 ";

}  // namespace

TEST_CASE("shears train writes its run folder and resumes exactly", "[cli]") {
  fs::path straight = fresh_dir("straight"), split = fresh_dir("split");
  Result a = run_shears(kQuick + "--output " + straight.string());
  INFO(a.output);
  REQUIRE(a.status == 0);
  for (const char* file : {"config.toml", "summary.csv", "events.jsonl", "last.safetensors", "best.safetensors",
                           "last.optim.safetensors"})
    CHECK(fs::exists(straight / file));
  CHECK(summary_rows(straight).size() == 4);  // header + 3 epochs

  Result first = run_shears(kQuick + "--stop-after 1 --output " + split.string());
  INFO(first.output);
  REQUIRE(first.status == 0);
  Result rest = run_shears(kQuick + "--output " + split.string() + " --resume " + (split / "last.safetensors").string());
  INFO(rest.output);
  REQUIRE(rest.status == 0);
  CHECK(summary_rows(split) == summary_rows(straight));
  // One machine record per invocation: the fresh run's and the resumed one's.
  std::istringstream records(read_file(split / "machine.jsonl"));
  int machine_lines = 0;
  for (std::string line; std::getline(records, line); ++machine_lines)
    for (const char* key :
         {"\"cpu\":", "\"isa\":", "\"threads\":", "\"blas_core\":", "\"shears_version\":", "\"time\":"})
      CHECK(line.find(key) != std::string::npos);
  CHECK(machine_lines == 2);
  CHECK(read_file(straight / "machine.jsonl").find("\"threads\":") != std::string::npos);

  Result eval = run_shears("eval --data synthetic --weights " + (straight / "best.safetensors").string());
  INFO(eval.output);
  CHECK(eval.status == 0);
  CHECK(eval.output.find("top-1") != std::string::npos);
}

TEST_CASE("SFW's per-epoch lr schemes: decrease_3 steps down, dynamic_change resumes exactly", "[cli][sfw]") {
  const std::string sfw = "train --model mlpnet --data synthetic --limit-train 64 --limit-test 32 --batch-size 32 "
                          "--workers 1 --opt sfw --lr 1 --momentum 0.9 --weight-decay 0 ";
  fs::path steps = fresh_dir("sfw_decrease");
  Result a = run_shears(sfw + "--epochs 6 --sched decrease_3 --output " + steps.string());
  INFO(a.output);
  REQUIRE(a.status == 0);
  std::vector<double> lr;  // the lr column (9th) of summary.csv
  std::istringstream in(read_file(steps / "summary.csv"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::string cell;
    for (int column = 0; column < 9; ++column) std::getline(cells, cell, ',');
    lr.push_back(std::stod(cell));
  }
  REQUIRE(lr.size() == 6);
  const double expected[] = {1, 1, 0.1, 0.1, 0.01, 0.01};  // ÷10 at epochs E/3 and 2E/3 (0-based 2 and 4)
  for (size_t e = 0; e < 6; ++e) CHECK(lr[e] == Approx(expected[e]));

  // dynamic_change looks back on the losses of earlier epochs from epoch 21 on: the resumed run
  // must recover them from summary.csv.
  fs::path straight = fresh_dir("sfw_dynamic"), split = fresh_dir("sfw_dynamic_split");
  Result b = run_shears(sfw + "--epochs 27 --sched dynamic_change --output " + straight.string());
  INFO(b.output);
  REQUIRE(b.status == 0);
  Result first = run_shears(sfw + "--epochs 27 --sched dynamic_change --stop-after 22 --output " + split.string());
  REQUIRE(first.status == 0);
  Result rest = run_shears(sfw + "--epochs 27 --sched dynamic_change --output " + split.string() + " --resume " +
                           (split / "last.safetensors").string());
  INFO(rest.output);
  REQUIRE(rest.status == 0);
  CHECK(summary_rows(split) == summary_rows(straight));
}

TEST_CASE("a config file supplies the flags and the resolved config is written", "[cli]") {
  fs::path dir = fresh_dir("config"), config = fs::temp_directory_path() / "shears_cli_config.toml";
  std::ofstream(config) << "model = \"mlpnet\"\ndata = \"synthetic\"\nepochs = 1\nbatch-size = 64\nlr = 0.02\n";
  Result r = run_shears("train --config " + config.string() + " --output " + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::string resolved = read_file(dir / "config.toml");
  CHECK(resolved.find("batch-size=64") != std::string::npos);
  CHECK(resolved.find("lr=0.02") != std::string::npos);
  CHECK(summary_rows(dir).size() == 2);
  fs::remove(config);
}

TEST_CASE("--val-fraction holds out part of train and chooses the best epoch on it", "[cli]") {
  fs::path dir = fresh_dir("val");
  Result r = run_shears(kQuick + "--val-fraction 0.25 --output " + dir.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("768 train / 256 test") != std::string::npos);  // 1024 synthetic images, a quarter held out
  CHECK(r.output.find("best val top-1") != std::string::npos);
  std::vector<std::string> rows = summary_rows(dir);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].rfind("epoch,train_loss,train_top1,val_loss,val_top1,test_loss", 0) == 0);
  CHECK(rows[1].find(",,") == std::string::npos);  // the val cells are filled
  Result bad = run_shears(kQuick + "--val-fraction 1.5 --output " + dir.string());
  CHECK(bad.status != 0);
  CHECK(bad.output.find("val_fraction") != std::string::npos);
}

TEST_CASE("--augment crop-flip changes what the model trains on, none is the standard pipeline here", "[cli]") {
  // Synthetic data has no standard augmentation: "none" and "standard" train on the same images,
  // crop-flip on others (same seed, so only the augmentation can differ).
  fs::path standard = fresh_dir("aug_standard"), none = fresh_dir("aug_none"), crop = fresh_dir("aug_crop");
  Result a = run_shears(kQuick + "--output " + standard.string());
  Result b = run_shears(kQuick + "--augment none --output " + none.string());
  Result c = run_shears(kQuick + "--augment crop-flip --crop-padding 2 --output " + crop.string());
  INFO(a.output << b.output << c.output);
  REQUIRE((a.status == 0 && b.status == 0 && c.status == 0));
  CHECK(summary_rows(none) == summary_rows(standard));
  CHECK(summary_rows(crop)[1] != summary_rows(standard)[1]);
  CHECK(read_file(crop / "config.toml").find("augment=\"crop-flip\"") != std::string::npos);
  Result bad = run_shears(kQuick + "--augment mixup --output " + crop.string());
  CHECK(bad.status != 0);
  CHECK(bad.output.find("--augment") != std::string::npos);
  CHECK(bad.output.find("'mixup'") != std::string::npos);
}

TEST_CASE("a diverging loss stops training with the last good checkpoint named", "[cli]") {
  fs::path dir = fresh_dir("diverge");
  Result r = run_shears("train --model mlpnet --data synthetic --epochs 1 --batch-size 32 --workers 1 --lr 1e30 --output " +
                        dir.string());
  CHECK(r.status != 0);
  CHECK(r.output.find("the loss became") != std::string::npos);
  CHECK(r.output.find("lower --lr") != std::string::npos);
}

TEST_CASE("user mistakes get one clear message and a non-zero exit", "[cli]") {
  fs::path dir = fresh_dir("errors");
  Result unknown_model = run_shears("train --model resnet7 --data synthetic --output " + dir.string());
  CHECK(unknown_model.status != 0);
  CHECK(unknown_model.output.find("unknown architecture 'resnet7'") != std::string::npos);
  Result bad_opt = run_shears(kQuick + "--opt rmsprop --output " + dir.string());
  CHECK(bad_opt.status != 0);
  CHECK(bad_opt.output.find("--opt") != std::string::npos);
  Result missing = run_shears("eval --weights /nonexistent/model.safetensors");
  CHECK(missing.status != 0);
  CHECK(missing.output.find("/nonexistent/model.safetensors") != std::string::npos);
  Result bad_value = run_shears("train --epochs many --output " + dir.string());
  CHECK(bad_value.status != 0);
  CHECK(bad_value.output.find("--epochs") != std::string::npos);
}

}  // namespace shears

namespace shears {

TEST_CASE("an unknown flag is named, with the closest flag of its command", "[cli]") {
  Result r = run_shears("train --epoch 3 --lrr=0.1 --zzzzzz --output " + fresh_dir("unknown_flag").string());
  CHECK(r.status != 0);
  CHECK(r.output.find("unknown flag --epoch; did you mean --epochs?") != std::string::npos);
  CHECK(r.output.find("unknown flag --lrr; did you mean --lr?") != std::string::npos);
  CHECK(r.output.find("unknown flag --zzzzzz\n") != std::string::npos);
  Result prune = run_shears("prune --samplez 3");
  CHECK(prune.output.find("did you mean --samples?") != std::string::npos);
  const fs::path config = fresh_dir("unknown_key_config");
  fs::create_directories(config);
  std::ofstream(config / "c.toml") << "epoch = 3\n";
  Result key = run_shears("train --config " + (config / "c.toml").string() + " --output " + (config / "run").string());
  CHECK(key.status != 0);
  CHECK(key.output.find("unknown key 'epoch'") != std::string::npos);
  CHECK(key.output.find("did you mean 'epochs'?") != std::string::npos);
}

}  // namespace shears
