// Optimizers and schedules against torch.optim (fixtures: tools/gen_optim_fixtures.py).
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"
#include "tests/helpers.hpp"

namespace shears {
namespace {

const nlohmann::json& fixtures() {
  static const nlohmann::json j = [] {
    std::ifstream in(SHEARS_FIXTURES "/optim_torch.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

Tensor tensor_from(const nlohmann::json& values, const nlohmann::json& shape) {
  return Tensor::from_vector(shape.get<Shape>(), values.get<std::vector<float>>());
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name, const optim::NamedTensors& params) {
  auto group = [&](double lr, double wd) { return std::vector<optim::ParamGroup>{{params, lr, wd, lr}}; };
  if (name == "sgd_plain") return std::make_unique<optim::Sgd>(group(0.1, 0), optim::SgdOptions{0.1, 0, 0, 0, false});
  if (name == "sgd_momentum_dampening_wd")
    return std::make_unique<optim::Sgd>(group(0.05, 5e-4), optim::SgdOptions{0.05, 0.9, 0.1, 5e-4, false});
  if (name == "sgd_nesterov_wd")
    return std::make_unique<optim::Sgd>(group(0.1, 1e-4), optim::SgdOptions{0.1, 0.9, 0, 1e-4, true});
  if (name == "adam_defaults") return std::make_unique<optim::Adam>(group(1e-3, 0), optim::AdamOptions{});
  if (name == "adam_wd") {
    optim::AdamOptions o;
    o.lr = 1e-2, o.weight_decay = 1e-2;
    return std::make_unique<optim::Adam>(group(1e-2, 1e-2), o);
  }
  if (name == "adamw_defaults") return std::make_unique<optim::Adam>(group(1e-3, 1e-2), optim::adamw_defaults());
  FAIL("no optimizer for fixture case " << name);
  return nullptr;
}

}  // namespace

TEST_CASE("optimizers take the same steps as torch.optim", "[optim]") {
  for (const auto& c : fixtures()["optimizers"]) {
    std::string name = c["name"];
    DYNAMIC_SECTION(name) {
      optim::NamedTensors params;
      for (size_t i = 0; i < c["shapes"].size(); ++i)
        params.emplace_back("p" + std::to_string(i), tensor_from(c["initial"][i], c["shapes"][i]));
      auto opt = make_optimizer(name, params);
      for (size_t step = 0; step < c["grads"].size(); ++step) {
        for (size_t i = 0; i < params.size(); ++i) params[i].second.set_grad(tensor_from(c["grads"][step][i], c["shapes"][i]));
        opt->step();
        for (size_t i = 0; i < params.size(); ++i) {
          INFO("step " << step << ", parameter " << i);
          test::require_close(params[i].second, tensor_from(c["after"][step][i], c["shapes"][i]), 1e-6, 1e-5);
        }
      }
    }
  }
}

TEST_CASE("schedules give torch.optim.lr_scheduler's learning rates", "[optim]") {
  std::map<std::string, optim::ScheduleOptions> configs;
  configs["step_3_0.5"] = {"step", 12, 3, {}, 0.5};
  configs["multistep_3_7_0.1"] = {"multistep", 12, 0, {3, 7}, 0.1};
  configs["cosine_10_min0.001"] = {"cosine", 10, 0, {}, 0.1, 0.01};
  configs["onecycle_20"] = {"onecycle", 20, 30, {}};
  configs["warmup3_0.1_cosine7"] = {"cosine", 10, 0, {}, 0.1, 0.0, 3, 0.1};
  for (const auto& c : fixtures()["schedules"]) {
    std::string name = c["name"];
    INFO("schedule " << name);
    REQUIRE(configs.count(name) == 1);
    auto schedule = optim::make_schedule(configs[name]);
    double base = c["base_lr"];
    for (size_t t = 0; t < c["lrs"].size(); ++t) {
      INFO("step " << t);
      CHECK(base * schedule->factor(static_cast<int64_t>(t)) == Approx(c["lrs"][t].get<double>()).epsilon(1e-9).margin(1e-12));
    }
  }
}

TEST_CASE("gradient clipping by norm matches torch.nn.utils.clip_grad_norm_", "[optim]") {
  const auto& c = fixtures()["clip_grad_norm"];
  optim::NamedTensors params;
  for (size_t i = 0; i < c["shapes"].size(); ++i) {
    Tensor p = Tensor::zeros(c["shapes"][i].get<Shape>());
    p.set_grad(tensor_from(c["grads"][i], c["shapes"][i]));
    params.emplace_back("p" + std::to_string(i), p);
  }
  double total = optim::clip_grad_norm(params, c["max_norm"].get<double>());
  CHECK(total == Approx(c["total_norm"].get<double>()).epsilon(1e-6));
  for (size_t i = 0; i < params.size(); ++i)
    test::require_close(params[i].second.grad(), tensor_from(c["clipped"][i], c["shapes"][i]), 1e-6, 1e-5);
}

TEST_CASE("optimizer state round-trips by parameter name and rejects foreign entries", "[optim]") {
  Tensor w = Tensor::ones({2, 2}), b = Tensor::ones({2});
  optim::NamedTensors params{{"fc.weight", w}, {"fc.bias", b}};
  optim::Sgd sgd(optim::decay_groups(params, 0.1, 5e-4, true), {0.1, 0.9, 0, 5e-4, false});
  REQUIRE(sgd.param_groups().size() == 2);
  CHECK(sgd.param_groups()[1].weight_decay == 0.0);  // the bias: no decay
  w.set_grad(Tensor::ones({2, 2}));
  b.set_grad(Tensor::ones({2}));
  sgd.step();
  optim::NamedTensors state = sgd.state_dict();
  CHECK(state.size() == 3);  // two momentum buffers and the step count
  optim::Sgd restored(optim::decay_groups(params, 0.1, 5e-4, true), {0.1, 0.9, 0, 5e-4, false});
  restored.load_state_dict(state);
  CHECK(restored.state_dict().size() == 3);
  CHECK_THROWS_WITH(restored.load_state_dict({{"conv.weight.momentum_buffer", Tensor::zeros({2})}}),
                    Catch::Contains("conv.weight"));
  CHECK_THROWS_WITH(restored.load_state_dict({{"fc.bias.momentum_buffer", Tensor::zeros({3})}}),
                    Catch::Contains("[3]"));
  optim::ScheduleOptions bogus;
  bogus.name = "bogus";
  CHECK_THROWS_WITH(optim::make_schedule(bogus), Catch::Contains("unknown schedule 'bogus'"));
  CHECK_THROWS_AS(optim::Sgd(optim::decay_groups(params, 0.1, 0, false), {0.1, 0, 0, 0, true}), Error);
}

}  // namespace shears
