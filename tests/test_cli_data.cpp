// A user's own data and weights through the `shears` command: image folders of photos of many
// sizes, checkpoints that carry their input contract, predict, fine-tuning from weights, and flags
// refused before any data is read.
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "nn/safetensors.hpp"
#include "tests/cli_helpers.hpp"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace shears {
namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using test::run_shears;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("shears_cli_data_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// An image of w × h RGB pixels: class "red" is reddish, class "blue" bluish, with noise.
std::vector<uint8_t> picture(int w, int h, bool red, std::mt19937& rng) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < pixels.size(); i += 3) {
    const int noise = static_cast<int>(rng() % 60);
    pixels[i] = static_cast<uint8_t>(red ? 180 + noise : 20 + noise);
    pixels[i + 1] = static_cast<uint8_t>(60 + noise);
    pixels[i + 2] = static_cast<uint8_t>(red ? 20 + noise : 180 + noise);
  }
  return pixels;
}

// split/<class>/<k>.{png,jpg} for `count` images per class, of mixed sizes and both formats.
void write_split(const fs::path& root, const std::string& split, int count, unsigned seed) {
  std::mt19937 rng(seed);
  for (const char* cls : {"blue", "red"}) {
    fs::create_directories(root / split / cls);
    for (int k = 0; k < count; ++k) {
      const int w = 40 + static_cast<int>(rng() % 60), h = 40 + static_cast<int>(rng() % 60);
      const std::vector<uint8_t> pixels = picture(w, h, std::string(cls) == "red", rng);
      const std::string stem = (root / split / cls / std::to_string(k)).string();
      if (k % 2)
        REQUIRE(stbi_write_jpg((stem + ".jpg").c_str(), w, h, 3, pixels.data(), 90));
      else
        REQUIRE(stbi_write_png((stem + ".png").c_str(), w, h, 3, pixels.data(), w * 3));
    }
  }
  std::ofstream(root / split / "blue" / "README.txt") << "not an image";
}

// A number printed after `label` in `text` (e.g. "top-1 " -> 87.5).
double number_after(const std::string& text, const std::string& label) {
  const size_t at = text.find(label);
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + label.size()));
}

const std::string kFolderTrain =
    "train --model cnn --cfg 8,M,16 --data {root} --input-size 3 64 64 --epochs 2 --batch-size 8 --lr 0.05 "
    "--workers 1 --output {out}";

std::string with(std::string text, const std::string& key, const std::string& value) {
  text.replace(text.find(key), key.size(), value);
  return text;
}

TEST_CASE("a folder of mixed-size JPEGs and PNGs trains at 3x64x64; a test-only copy evaluates from the checkpoint",
          "[cli][data]") {
  const fs::path dir = fresh_dir("folder");
  write_split(dir / "photos", "train", 12, 1);
  write_split(dir / "photos", "validation", 4, 2);
  const auto trained =
      run_shears(with(with(kFolderTrain, "{root}", (dir / "photos").string()), "{out}", (dir / "run").string()));
  INFO(trained.output);
  REQUIRE(trained.status == 0);
  CHECK_THAT(trained.output, Contains("24 train / 8 test images, 64x64, 2 classes"));

  // The checkpoint carries its input contract.
  const safetensors::File file = safetensors::load((dir / "run/last.safetensors").string());
  CHECK(file.metadata.at("shears.schema") == "2");
  CHECK(file.metadata.at("input.dataset") == "image-folder");
  CHECK(file.metadata.at("input.shape") == "3,64,64");
  CHECK(file.metadata.at("input.classes") == R"(["blue","red"])");
  CHECK(file.metadata.at("input.transform") == "resize-crop");
  CHECK(file.metadata.at("input.crop_pct") == "0.875");
  CHECK(file.metadata.at("input.interpolation") == "bilinear");
  CHECK(file.metadata.count("input.mean"));

  // The run's own config.toml trains the same run again.
  const auto again =
      run_shears("train --config " + (dir / "run/config.toml").string() + " --output " + (dir / "again").string());
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(test::read_text(dir / "again/last.safetensors") == test::read_text(dir / "run/last.safetensors"));

  // The same images, once as the folder's split and once as a folder of class folders alone.
  fs::copy(dir / "photos/validation", dir / "alone", fs::copy_options::recursive);
  const std::string weights = " --weights " + (dir / "run/last.safetensors").string();
  const auto on_split = run_shears("eval --data " + (dir / "photos").string() + weights);
  const auto alone = run_shears("eval --data-dir " + (dir / "alone").string() + weights + " --results-file " +
                                (dir / "results.json").string());
  INFO(on_split.output << alone.output);
  REQUIRE(on_split.status == 0);
  REQUIRE(alone.status == 0);
  CHECK(number_after(alone.output, "loss ") == number_after(on_split.output, "loss "));
  CHECK(number_after(alone.output, "top-1 ") == number_after(on_split.output, "top-1 "));
  const nlohmann::json results = nlohmann::json::parse(test::read_text(dir / "results.json"));
  CHECK(results["images"] == 8);
  CHECK(results["img_size"] == 64);
  CHECK(std::abs(results["top1"].get<double>() - number_after(alone.output, "top-1 ")) < 0.01);

  SECTION("predict: top-5 of every image, the logits of eval's pass") {
    const auto predicted = run_shears("predict --data " + (dir / "alone").string() + weights + " --logits --output " +
                                      (dir / "p.json").string());
    INFO(predicted.output);
    REQUIRE(predicted.status == 0);
    const nlohmann::json rows = nlohmann::json::parse(test::read_text(dir / "p.json"));
    REQUIRE(rows.size() == 8);
    double loss = 0;
    int correct = 0;
    for (const auto& row : rows) {
      CHECK(row["top"].size() == 2);  // top-5 of two classes
      const std::vector<float> logits = row["logits"];
      const int label = row["label"];
      const double top = std::max(logits[0], logits[1]);
      loss += top + std::log(std::exp(logits[0] - top) + std::exp(logits[1] - top)) - logits[label];
      correct += row["top"][0]["class"] == label;
      CHECK(row["image"].get<std::string>().find((dir / "alone").string()) == 0);
    }
    CHECK(std::abs(loss / 8 - number_after(alone.output, "loss ")) < 1e-4);
    CHECK(100.0 * correct / 8 == Approx(number_after(alone.output, "top-1 ")).margin(0.01));
    // Files and folders given directly, as CSV.
    const auto files = run_shears("predict" + weights + " --top-k 1 --images " + (dir / "alone/red").string() + " " +
                                  (dir / "alone/blue/0.png").string() + " --output " + (dir / "p.csv").string());
    INFO(files.output);
    REQUIRE(files.status == 0);
    const std::string csv = test::read_text(dir / "p.csv");
    CHECK_THAT(csv, Contains("image,label,class_1,name_1,probability_1\n"));
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 4 + 1);
    // What is not an image is named: a FIFO (never opened: it would block), a missing path.
    REQUIRE(mkfifo((dir / "pipe.png").c_str(), 0600) == 0);
    CHECK_THAT(run_shears("predict" + weights + " --images " + (dir / "pipe.png").string()).output,
               Contains("pipe.png: expected an image file or a folder, got a FIFO"));
    CHECK_THAT(run_shears("predict" + weights + " --images " + (dir / "nothere.png").string()).output,
               Contains("nothere.png: no such file or folder"));
  }
  SECTION("data that breaks the contract is refused before any work") {
    const auto mnist = run_shears("eval --data fashion-mnist --limit-test 10" + weights);
    CHECK(mnist.status != 0);
    CHECK_THAT(mnist.output, Contains("the checkpoint's 2 classes ('blue', 'red', trained on image-folder) are not "
                                      "this data's 10"));
    CHECK_THAT(run_shears("eval" + weights).output, Contains("trained on an image folder: give the folder"));
  }
  SECTION("train --initial-checkpoint: fine-tuning from the weights, a new head for another class count") {
    write_split(dir / "three", "train", 8, 3);
    fs::create_directories(dir / "three/train/green");
    fs::copy(dir / "three/train/red/0.png", dir / "three/train/green/0.png");
    const auto tuned =
        run_shears(with(with(kFolderTrain, "{root}", (dir / "three").string()), "{out}", (dir / "tuned").string()) +
                   " --val-fraction 0.25 --initial-checkpoint " + (dir / "run/last.safetensors").string());
    INFO(tuned.output);
    REQUIRE(tuned.status == 0);
    CHECK_THAT(tuned.output, Contains("classifier.weight reinitialised") && Contains("classifier.bias reinitialised"));
    CHECK_THAT(tuned.output, Contains("starting from the weights of"));
    const auto wrong = run_shears(
        with(with(with(kFolderTrain, "{root}", (dir / "photos").string()), "{out}", (dir / "wrong").string()), "8,M,16",
             "4,M,16") +
        " --initial-checkpoint " + (dir / "run/last.safetensors").string());
    CHECK(wrong.status != 0);
    CHECK_THAT(wrong.output, Contains("does not fit the model being trained") && Contains("features.0.weight"));
    CHECK_FALSE(fs::exists(dir / "wrong"));  // refused before its first epoch: no run folder
  }
}

TEST_CASE("a built-in dataset's checkpoint evaluates without --data; old checkpoints are checked by shape",
          "[cli][data]") {
  const fs::path dir = fresh_dir("builtin");
  const auto trained = run_shears(
      "train --model mlpnet --epochs 1 --limit-train 512 --limit-test 256 --workers 1 "
      "--input-size 32 --output " +
      (dir / "run").string());
  INFO(trained.output);
  REQUIRE(trained.status == 0);
  const std::string weights = (dir / "run/last.safetensors").string();
  const safetensors::File file = safetensors::load(weights);
  CHECK(file.metadata.at("input.dataset") == "fashion-mnist");
  CHECK(file.metadata.at("input.transform") == "pad");
  CHECK(file.metadata.at("input.pad") == "2");
  CHECK(file.metadata.at("input.mean") == "0.286");
  const auto eval = run_shears("eval --limit-test 256 --weights " + weights);
  INFO(eval.output);
  REQUIRE(eval.status == 0);
  CHECK_THAT(eval.output, Contains("on fashion-mnist test (256 images)"));

  SECTION("photos of many sizes do not fit a checkpoint trained without a resize") {
    write_split(dir / "some", "test", 1, 5);  // a class folder named as one of Fashion-MNIST's classes
    fs::create_directories(dir / "photos/test");
    fs::rename(dir / "some/test/blue", dir / "photos/test/Coat");
    const auto r = run_shears("eval --data " + (dir / "photos").string() + " --weights " + weights);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Contains("the checkpoint takes fashion-mnist's 28x28 images as stored (trained without a "
                                  "resize); an image folder's photos of many sizes do not fit it"));
  }
  SECTION("a checkpoint without a contract (schema 1) still loads; its shape picks the input") {
    std::map<std::string, std::string> old = file.metadata;
    std::erase_if(old, [](const auto& kv) { return kv.first.rfind("input.", 0) == 0 || kv.first == "shears.schema"; });
    safetensors::save((dir / "old.safetensors").string(), file.tensors, old);
    const auto again = run_shears("eval --limit-test 256 --weights " + (dir / "old.safetensors").string());
    INFO(again.output);
    REQUIRE(again.status == 0);
    CHECK(number_after(again.output, "loss ") == number_after(eval.output, "loss "));
  }
  SECTION("a PyTorch state_dict: strict by default, --non-strict loads what matches and lists the rest") {
    std::vector<safetensors::Entry> tensors = file.tensors;
    const std::string dropped = tensors.back().name;
    tensors.pop_back();
    tensors.push_back({"extra.weight", tensors.front().value, safetensors::Dtype::F32});
    safetensors::save((dir / "torch.safetensors").string(), tensors, {{"format", "pt"}});
    const std::string foreign =
        "eval --limit-test 256 --model mlpnet --input-size 32 --weights " + (dir / "torch.safetensors").string();
    const auto strict = run_shears(foreign);
    CHECK(strict.status != 0);
    CHECK_THAT(strict.output, Contains(dropped) && Contains("extra.weight"));
    const auto loose = run_shears(foreign + " --non-strict");
    INFO(loose.output);
    CHECK(loose.status == 0);
    CHECK_THAT(loose.output, Contains("non-strict load: left out 1 missing key: " + dropped) &&
                                 Contains("1 unexpected key: extra.weight"));
    CHECK_THAT(run_shears("eval --non-strict --weights " + weights).output, Contains("--non-strict: applies to"));
  }
  SECTION("a newer schema or a malformed contract key is refused by name") {
    std::map<std::string, std::string> newer = file.metadata;
    newer["shears.schema"] = "4";
    safetensors::save((dir / "newer.safetensors").string(), file.tensors, newer);
    CHECK_THAT(run_shears("eval --weights " + (dir / "newer.safetensors").string()).output,
               Contains("written with checkpoint schema 4") && Contains("reads up to 3"));
    std::map<std::string, std::string> bad = file.metadata;
    bad["input.std"] = "0.35,0.35";
    safetensors::save((dir / "bad.safetensors").string(), file.tensors, bad);
    CHECK_THAT(run_shears("eval --weights " + (dir / "bad.safetensors").string()).output,
               Contains("bad.safetensors") && Contains("metadata key 'input.std'") && Contains("expected 1 values"));
  }
}

TEST_CASE("flags that would be ignored or are wrong are refused before anything is read", "[cli][data]") {
  const fs::path dir = fresh_dir("flags");
  // No checkpoint exists: an error about the flags proves they were checked first.
  std::ofstream(dir / "w.safetensors") << "not read";
  const std::string base = "prune --weights " + (dir / "w.safetensors").string() + " --output " + (dir / "o").string();
  const std::pair<std::string, std::string> cases[] = {
      {" --sparsity 0.5 --structured --stages 3", "--stages: 3 would be ignored: channel pruning runs in one shot"},
      {" --sparsity 0.5 --method snip --stages 3", "snip runs in one shot (magnitude, swap, lr, woodfisher run in"},
      {" --sparsity 0.5 --importance l2", "--importance: applies to channel pruning (--structured)"},
      {" --sparsity 0.5 --fold-bn", "--fold-bn: applies to channel pruning"},
      {" --sparsity 0.5 --method nosuch", "unknown method"},
      {" --sparsity 0.5 --structured --importance nosuch", "nosuch"},
      {" --sparsity 1.5", "--sparsity: expected a fraction in [0, 1), got 1.5"},
  };
  for (const auto& [flags, message] : cases) {
    const auto r = run_shears(base + flags);
    INFO(flags << "\n" << r.output);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Contains(message));
    CHECK_THAT(r.output, !Contains("w.safetensors"));
  }
  const std::string sweep =
      "sweep --weights " + (dir / "w.safetensors").string() + " --output " + (dir / "s").string() + " --sparsities 0.5";
  for (const auto& [flags, message] :
       {std::pair<std::string, std::string>{" --methods magnitude,snip --stages 2", "snip runs in one shot"},
        {" --methods l1 --structured --stages 2", "channel pruning runs in one shot"},
        {" --methods magnitude --fold-bn", "--fold-bn: applies to channel pruning"}}) {
    const auto r = run_shears(sweep + flags);
    INFO(flags << "\n" << r.output);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Contains(message));
  }
  // train: refused before the data is read, and no run folder is left behind.
  const std::pair<std::string, std::string> train_cases[] = {
      {" --sfw-k 5", "--sfw-k: configures the SFW optimizer: with --opt sgd it would be ignored"},
      {" --sfw-init", "--sfw-init: configures the SFW optimizer"},
      {" --split-sparsity 0.3", "--split-sparsity: configures --split-data K"},
      {" --sched nosuch", "unknown schedule 'nosuch'"},
      {" --opt sfw --sfw-constraint nosuch", "--sfw-constraint: unknown value 'nosuch'"},
      {" --data /nowhere --opt nosuch", "--opt: unknown optimizer 'nosuch'"},
      {" --resume x --initial-checkpoint " + (dir / "w.safetensors").string(), "give one of them"},
  };
  for (const auto& [flags, message] : train_cases) {
    const auto r = run_shears("train --output " + (dir / "run").string() + flags);
    INFO(flags << "\n" << r.output);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Contains(message));
    CHECK_FALSE(fs::exists(dir / "run"));
  }
}

}  // namespace
}  // namespace shears
