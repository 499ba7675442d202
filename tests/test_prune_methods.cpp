// The pruning-method registry (prune/methods/registry.hpp) and the training loop (train/loop.hpp): the
// built-in rows do what their direct calls do, a registered method or importance is found and run
// by name, and the loop's non-finite policy and fine-tuning keep their promises.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "core/ops.hpp"
#include "data/loader.hpp"
#include "data/synthetic.hpp"
#include "nn/models/registry.hpp"
#include "optim/optimizer.hpp"
#include "pipeline/sweep.hpp"
#include "prune/masks.hpp"
#include "prune/methods/registry.hpp"
#include "prune/metrics.hpp"
#include "train/loop.hpp"

using namespace shears;

namespace {

struct Setup {
  data::TrainTest splits =
      data::make_synthetic({.train_size = 256, .test_size = 64, .image_shape = {1, 8, 8}, .num_classes = 4});
  std::shared_ptr<nn::Module> model = nn::make_model("mlpnet", {.in_channels = 1, .num_classes = 4, .input_size = 8});
  prune::PruneContext context() {
    prune::PruneContext c;
    c.target.sparsity = 0.75;
    c.input_shape = {1, 1, 8, 8};
    c.batch_size = 32;
    c.training_batches = data::batch_factory(splits.train, {});
    return c;
  }
};

bool same_values(const nn::Module& a, const nn::Module& b) {
  for (const auto& [name, t] : a.named_parameters()) {
    const Tensor u = b.parameter(name);
    for (int64_t i = 0; i < t.numel(); ++i)
      if (t.data()[i] != u.data()[i]) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("registry: every built-in row is listed by kind, and unknown names are refused with the list",
          "[prune][registry]") {
  // (Other tests register rows of their own: only the built-in head of each table is fixed.)
  std::vector<std::string> masks, channels;
  for (const prune::PruningMethod& m : prune::pruning_methods())
    (m.kind == prune::MethodKind::masks ? masks : channels).push_back(m.name);
  CHECK(std::vector<std::string>(masks.begin(), masks.begin() + 9) ==
        std::vector<std::string>{"magnitude", "random", "snip", "grasp", "synflow", "spode", "swap", "lr", "woodfisher"});
  CHECK(std::vector<std::string>(channels.begin(), channels.begin() + 3) ==
        std::vector<std::string>{"remove", "intrafusion", "sfw"});
  CHECK(prune::importance_names().starts_with("l1, l2, lamp, bn, taylor"));
  for (const prune::PruningMethod& m : prune::pruning_methods())
    CHECK(static_cast<bool>(m.run) == (m.kind != prune::MethodKind::training));
  try {
    prune::find_method("magnitud", prune::MethodKind::masks);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("unknown method 'magnitud'; expected magnitude, random") != std::string::npos);
  }
  CHECK_THROWS_WITH(prune::find_method("sfw", prune::MethodKind::masks),
                    Catch::Contains("prunes while a model trains"));
  CHECK_THROWS_WITH(prune::find_method("remove", prune::MethodKind::masks), Catch::Contains("unknown method"));
  CHECK_THROWS_WITH(prune::find_importance("l3"), Catch::Contains("expected l1, l2, lamp, bn, taylor"));
  CHECK_THROWS_AS(prune::register_method({"magnitude", prune::MethodKind::masks, "again", [](auto&, auto&) {}}), Error);
}

TEST_CASE("registry: a built-in row prunes as its direct call does", "[prune][registry]") {
  Setup s;
  auto direct = s.model->clone();
  const std::vector<std::string> names = prune::prunable_parameters(*direct);
  prune::NamedTensors scores = prune::magnitude_scores(*direct, names);
  prune::apply_masks(*direct, prune::masks_from_scores(scores, {.sparsity = 0.75}));
  auto via_registry = s.model->clone();
  prune::prune_model(*via_registry, "magnitude", s.context());
  for (const std::string& name : names) CHECK(prune::nonzeros(*via_registry, name) == prune::nonzeros(*direct, name));
  auto snip = s.model->clone();
  prune::prune_model(*snip, "snip", s.context());
  const double sparsity = prune::total_sparsity(prune::layer_densities(*s.model, *snip));
  CHECK(sparsity == Approx(0.75).margin(1e-3));
}

TEST_CASE("registry: a registered method and importance run by name, once registered, and twice is refused",
          "[prune][registry]") {
  Setup s;
  int calls = 0;
  prune::register_method({"keep-first-half", prune::MethodKind::masks,
                          "a test row: zero the second half of each weight",
                          [&calls](nn::Module& model, const prune::PruneContext& context) {
                            ++calls;
                            prune::NamedTensors masks;
                            for (const std::string& name : prune::prunable_parameters(model, context.scope)) {
                              Tensor m = Tensor::ones(model.parameter(name).shape());
                              for (int64_t i = m.numel() / 2; i < m.numel(); ++i) m.data()[i] = 0.f;
                              masks.emplace_back(name, m);
                            }
                            prune::apply_masks(model, masks);
                          }});
  CHECK(prune::method_names(prune::MethodKind::masks).ends_with("woodfisher or keep-first-half"));
  auto model = s.model->clone();
  prune::prune_model(*model, "keep-first-half", s.context());
  CHECK(calls == 1);
  CHECK(prune::total_sparsity(prune::layer_densities(*s.model, *model)) == Approx(0.5).margin(1e-3));
  CHECK_THROWS_AS(prune::register_method({"keep-first-half", prune::MethodKind::masks, "", [](auto&, auto&) {}}),
                  Error);

  prune::register_importance(
      {"reverse-index", "a test row: later channels matter more", false, [](nn::Module&, const prune::PruneContext&) {
         return prune::Importance([](const nn::Module&, const prune::Group& g) {
           std::vector<float> order(static_cast<size_t>(g.channels));
           for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<float>(i);
           return order;
         });
       }});
  prune::PruneContext context = s.context();
  context.target.sparsity = 0.5;
  context.options.channels.importance = "reverse-index";
  auto channels = s.model->clone();
  prune::prune_model(*channels, "remove", context);
  CHECK(channels->parameter("fc1.weight").size(0) < s.model->parameter("fc1.weight").size(0));
}

TEST_CASE("training loop: a non-finite step stops with the caller's message; finite steps are all counted",
          "[train][registry]") {
  Setup s;
  auto model = s.model->clone();
  optim::Sgd opt(optim::decay_groups(model->named_parameters(), 1e30, 0.0, true),
                 {.lr = 1e30});  // diverges within a few steps
  data::DataLoader loader(s.splits.train, {}, {.batch_size = 32, .shuffle = true, .num_workers = 0});
  train::LoopOptions stop;
  stop.nonfinite.explain = [](const std::string& problem, bool) { return "mine: " + problem; };
  train::Trainer stopping(*model, opt, stop);
  CHECK_THROWS_WITH(
      [&] {
        for (int64_t e = 0; e < 5; ++e) stopping.train_epoch(loader, e);
      }(),
      Catch::StartsWith("mine: epoch ") && Catch::Contains("the loss became"));

  auto skipper = s.model->clone();
  optim::Sgd opt2(optim::decay_groups(skipper->named_parameters(), 0.05, 0.0, true), {.lr = 0.05});
  train::LoopOptions skip;
  skip.nonfinite.skip = true;
  int64_t steps_seen = 0;
  skip.hooks.step = [&](const train::EpochStats& st) { steps_seen = st.steps; };
  train::Trainer trainer(*skipper, opt2, skip);
  const train::EpochStats st = trainer.train_epoch(loader, 0);
  CHECK(st.steps == 8);
  CHECK(steps_seen == 8);
  CHECK(st.skipped == 0);
  CHECK(st.seen == 256);
  CHECK(std::isfinite(st.mean_loss()));
}

TEST_CASE("training loop: fine-tuning keeps pruned weights exactly zero and does not depend on the hooks",
          "[train][registry]") {
  Setup s;
  auto a = s.model->clone();
  prune::prune_model(*a, "magnitude", s.context());
  auto b = a->clone();
  const int64_t kept = prune::count_size(*a, {1, 1, 8, 8}).size_nz;
  const train::FineTuneOptions options{.epochs = 2, .lr = 0.05, .batch_size = 32};
  int64_t epochs = 0;
  train::FineTuneHooks counting;
  counting.epoch_end = [&](const train::EpochStats&) { ++epochs; };
  train::fine_tune(*a, options, s.splits.train, {}, 3, counting);
  train::FineTuneHooks hooks;
  hooks.loop.log = [](const std::string&) {};
  train::fine_tune(*b, options, s.splits.train, {}, 3, hooks);
  CHECK(epochs == 2);
  CHECK(prune::count_size(*a, {1, 1, 8, 8}).size_nz <= kept);
  for (const std::string& name : prune::prunable_parameters(*a)) {
    const Tensor w = a->parameter(name), m = a->mask(name);
    for (int64_t i = 0; i < w.numel(); ++i)
      if (m.data()[i] == 0.f) REQUIRE(w.data()[i] == 0.f);
  }
  CHECK(same_values(*a, *b));
  CHECK_FALSE(same_values(*a, *s.model));
}

TEST_CASE("training loop: fine-tuning's lr follows a cosine to 0, or stays constant", "[train][registry]") {
  // One batch per epoch, plain SGD: two epochs are two steps, the second at lr/2 under the cosine
  // (t = 1/2) and at lr when constant. The same two steps by hand, on the same 32 images.
  const data::TrainTest d =
      data::make_synthetic({.train_size = 32, .test_size = 8, .image_shape = {1, 8, 8}, .num_classes = 4});
  const auto model = nn::make_model("mlpnet", {.in_channels = 1, .num_classes = 4, .input_size = 8});
  const Batch all = data::batch_factory(d.train, {})({32, 0, false, 1, "test"})();
  const double lr = 1e-3;
  auto by_hand = [&](double second_factor) {
    auto m = model->clone();
    for (double factor : {1.0, second_factor}) {
      m->zero_grad();
      cross_entropy((*m)(all.images), all.labels).backward();
      for (auto& [name, p] : m->named_parameters())
        for (int64_t i = 0; i < p.numel(); ++i) p.data()[i] -= static_cast<float>(lr * factor) * p.grad().data()[i];
    }
    return m;
  };
  for (bool cosine : {true, false}) {
    INFO("cosine " << cosine);
    auto m = model->clone();
    train::fine_tune(*m, {.epochs = 2, .lr = lr, .momentum = 0, .weight_decay = 0, .batch_size = 32, .cosine = cosine},
                     d.train, {}, 1);
    const auto expected = by_hand(cosine ? 0.5 : 1.0), other = by_hand(cosine ? 1.0 : 0.5);
    double to_expected = 0, to_other = 0;
    for (auto& [name, p] : m->named_parameters())
      for (int64_t i = 0; i < p.numel(); ++i) {
        to_expected = std::max(to_expected, double(std::abs(p.data()[i] - expected->parameter(name).data()[i])));
        to_other = std::max(to_other, double(std::abs(p.data()[i] - other->parameter(name).data()[i])));
      }
    INFO("largest difference " << to_expected << " to the steps by hand, " << to_other << " to the other schedule's");
    CHECK(to_expected < 1e-6);
    CHECK(to_other > 100 * to_expected);
  }
}

TEST_CASE("sweep: a registered method runs in the library's sweep beside a built-in one, and a rerun resumes",
          "[prune][registry]") {
  Setup s;
  prune::register_method({"keep-last-half", prune::MethodKind::masks, "a test row: zero the first half of each weight",
                          [](nn::Module& model, const prune::PruneContext& context) {
                            prune::NamedTensors masks;
                            for (const std::string& name : prune::prunable_parameters(model, context.scope)) {
                              Tensor m = Tensor::ones(model.parameter(name).shape());
                              for (int64_t i = 0; i < m.numel() / 2; ++i) m.data()[i] = 0.f;
                              masks.emplace_back(name, m);
                            }
                            prune::apply_masks(model, masks);
                          }});
  data::OpenedData d{
      .splits =
          {.name = "synthetic", .train = s.splits.train, .val = nullptr, .test = s.splits.test, .mean = {}, .std = {}},
      .channels = 1,
      .input_size = 8,
      .num_classes = 4,
      .train_transform = {},
      .test_transform = {},
      .contract = {}};
  pipeline::SweepOptions o;
  o.methods = {"magnitude", "keep-last-half"};
  o.sparsities = {0.5, 0.9};
  o.context = s.context();
  o.settings = {{"test", "registry"}};
  const auto folder = std::filesystem::temp_directory_path() / "shears-test-sweep-registry";
  std::filesystem::remove_all(folder);
  int64_t run = 0, skipped = 0;
  pipeline::SweepHooks hooks;
  hooks.cell_done = [&](const pipeline::SweepCell& c) { ++(c.skipped ? skipped : run); };
  const pipeline::SweepResult first = pipeline::run_sweep(*s.model, d, folder, o, hooks);
  CHECK(run == 4);
  REQUIRE(first.rows.size() == 4);
  for (const pipeline::SweepRow& r : first.rows) CHECK((r.method == "magnitude" || r.method == "keep-last-half"));
  const pipeline::SweepResult again = pipeline::run_sweep(*s.model, d, folder, o, hooks);
  CHECK(skipped == 4);
  CHECK(again.rows.size() == 4);
  o.methods = {"keep-lasthalf"};
  CHECK_THROWS_WITH(pipeline::run_sweep(*s.model, d, folder, o), Catch::Contains("keep-last-half"));
  std::filesystem::remove_all(folder);
}
