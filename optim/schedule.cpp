#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace shears::optim {

StepLR::StepLR(int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {
  SHEARS_CHECK(step_size > 0, "step schedule", "step_size must be positive, got ", step_size);
}

double StepLR::factor(int64_t t) const { return std::pow(gamma_, static_cast<double>(t / step_size_)); }

MultiStepLR::MultiStepLR(std::vector<int64_t> milestones, double gamma) : milestones_(std::move(milestones)), gamma_(gamma) {
  SHEARS_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()), "multistep schedule",
               "milestones must be increasing");
}

double MultiStepLR::factor(int64_t t) const {
  auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return std::pow(gamma_, static_cast<double>(passed));
}

CosineLR::CosineLR(int64_t t_max, double min_factor) : t_max_(t_max), min_factor_(min_factor) {
  SHEARS_CHECK(t_max > 0, "cosine schedule", "T_max must be positive, got ", t_max);
}

double CosineLR::factor(int64_t t) const {
  double cos = std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_));
  return min_factor_ + (1.0 - min_factor_) * (1.0 + cos) / 2.0;
}

OneCycleLR::OneCycleLR(int64_t total_steps, double pct_start, double div_factor, double final_div_factor)
    : total_steps_(total_steps), pct_start_(pct_start), div_factor_(div_factor), final_div_factor_(final_div_factor) {
  SHEARS_CHECK(total_steps > 1, "onecycle schedule", "total steps must be > 1, got ", total_steps);
  SHEARS_CHECK(pct_start > 0.0 && pct_start < 1.0, "onecycle schedule", "pct_start must be in (0, 1), got ", pct_start);
}

double OneCycleLR::factor(int64_t t) const {
  SHEARS_CHECK(t < total_steps_, "onecycle schedule", "step ", t, " is past the total of ", total_steps_, " steps");
  auto anneal = [](double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
  };
  double initial = 1.0 / div_factor_, final = initial / final_div_factor_;
  double end_up = pct_start_ * static_cast<double>(total_steps_) - 1.0;
  double end_down = static_cast<double>(total_steps_) - 1.0;
  double step = static_cast<double>(t);
  if (step <= end_up) return anneal(initial, 1.0, step / end_up);
  return anneal(1.0, final, (step - end_up) / (end_down - end_up));
}

WarmupLR::WarmupLR(int64_t warmup, double start_factor, std::unique_ptr<Schedule> main)
    : warmup_(warmup), start_factor_(start_factor), main_(std::move(main)) {
  SHEARS_CHECK(warmup > 0, "warm-up", "warm-up length must be positive, got ", warmup);
  SHEARS_CHECK(start_factor > 0.0 && start_factor <= 1.0, "warm-up", "start factor must be in (0, 1], got ",
               start_factor);
}

double WarmupLR::factor(int64_t t) const {
  if (t >= warmup_) return main_->factor(t - warmup_);
  return start_factor_ + (1.0 - start_factor_) * static_cast<double>(t) / static_cast<double>(warmup_);
}

std::unique_ptr<Schedule> make_schedule(const ScheduleOptions& o) {
  int64_t main_length = o.total - o.warmup;
  std::unique_ptr<Schedule> main;
  if (o.name == "constant") {
    main = std::make_unique<ConstantLR>();
  } else if (o.name == "step") {
    main = std::make_unique<StepLR>(o.step_size, o.gamma);
  } else if (o.name == "multistep") {
    main = std::make_unique<MultiStepLR>(o.milestones, o.gamma);
  } else if (o.name == "cosine") {
    SHEARS_CHECK(main_length > 0, "--sched cosine", "needs more steps (", o.total, ") than warm-up (", o.warmup, ")");
    main = std::make_unique<CosineLR>(main_length, o.min_factor);
  } else if (o.name == "onecycle") {
    SHEARS_CHECK(o.warmup == 0, "--sched onecycle", "has its own warm-up phase; drop --warmup-epochs");
    return std::make_unique<OneCycleLR>(o.total);
  } else {
    throw Error("--sched: unknown schedule '" + o.name + "'; expected constant, step, multistep, cosine or onecycle");
  }
  if (o.warmup > 0) return std::make_unique<WarmupLR>(o.warmup, o.warmup_start_factor, std::move(main));
  return main;
}

}  // namespace shears::optim
