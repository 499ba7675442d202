// Learning-rate schedules as pure functions of the step count t (epochs or iterations, as the
// caller steps them), returning the factor applied to each group's initial lr. The values are
// torch.optim.lr_scheduler's closed forms (1.13).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shears::optim {

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double factor(int64_t t) const = 0;
};

class ConstantLR : public Schedule {
 public:
  double factor(int64_t) const override { return 1.0; }
};

// StepLR: γ^⌊t / step_size⌋.
class StepLR : public Schedule {
 public:
  StepLR(int64_t step_size, double gamma);
  double factor(int64_t t) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// MultiStepLR: γ^(number of milestones ≤ t).
class MultiStepLR : public Schedule {
 public:
  MultiStepLR(std::vector<int64_t> milestones, double gamma);
  double factor(int64_t t) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// CosineAnnealingLR: η_min + (η₀ − η_min)·(1 + cos(π·t / T_max)) / 2, as a factor of η₀
// (min_factor = η_min / η₀).
class CosineLR : public Schedule {
 public:
  CosineLR(int64_t t_max, double min_factor);
  double factor(int64_t t) const override;

 private:
  int64_t t_max_;
  double min_factor_;
};

// OneCycleLR (cosine annealing, two phases): from max/div_factor up to max over the first
// pct_start of total_steps, then down to max/(div_factor·final_div_factor); the factor is
// relative to the maximum lr (the groups' initial lr).
class OneCycleLR : public Schedule {
 public:
  OneCycleLR(int64_t total_steps, double pct_start = 0.3, double div_factor = 25.0, double final_div_factor = 1e4);
  double factor(int64_t t) const override;

 private:
  int64_t total_steps_;
  double pct_start_, div_factor_, final_div_factor_;
};

// Linear warm-up (LinearLR from start_factor to 1 over `warmup` steps), then `main` restarted
// at 0: what SequentialLR([LinearLR, main], milestones=[warmup]) does.
class WarmupLR : public Schedule {
 public:
  WarmupLR(int64_t warmup, double start_factor, std::unique_ptr<Schedule> main);
  double factor(int64_t t) const override;

 private:
  int64_t warmup_;
  double start_factor_;
  std::unique_ptr<Schedule> main_;
};

struct ScheduleOptions {
  std::string name = "constant";  // constant | step | multistep | cosine | onecycle
  int64_t total = 0;              // steps the run lasts (cosine's T_max after warm-up, onecycle's total)
  int64_t step_size = 30;
  std::vector<int64_t> milestones;
  double gamma = 0.1;
  double min_factor = 0.0;  // cosine: η_min / η₀
  int64_t warmup = 0;
  double warmup_start_factor = 0.1;
};

// Builds a schedule by name; unknown names and inconsistent options throw shears::Error.
std::unique_ptr<Schedule> make_schedule(const ScheduleOptions& options);

}  // namespace shears::optim
