// `shears report` as a library function: the central claim of each of the four papers measured on
// one dataset (Fashion-MNIST by default), written as report.md.
//
// The report is a plan of steps, each a child process of the shears binary (`shears train`,
// `shears sweep`, `shears prune`) logging to DIR/logs/: the dense models it needs (one per seed:
// the seed changes the initialisation and the data order), then the sweeps behind every claim.
// Every step is resumable (a finished training or a full sweep.csv is skipped, an interrupted
// training resumes from its last checkpoint, a sweep skips its finished cells), so running the same
// plan again continues where it stopped. At the end report.md is written from the CSVs alone:
// tables of top-1 mean ± std over seeds, one plot per claim (SVG) and a verdict per claim computed
// from the numbers by the rule printed beside it, never written by hand.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace shears::pipeline {

struct ReportOptions {
  std::string output;  // the report folder
  bool full = false;  // false: a smoke-scale plan (minutes, 1 seed); true: the plan the claims deserve (hours, 3 seeds)
  int64_t seeds = 0;  // 0: 1 (quick) or 3 (full)
  std::string data = "fashion-mnist", data_dir;
  int64_t limit_train = 0, limit_test = 0;
  int threads = 0;  // per step; 0: SHEARS_NUM_THREADS or all cores
  // The shears binary that runs the steps: the running program when it is shears; a program that
  // links the library names an installed `shears`.
  std::string executable = "/proc/self/exe";
  std::function<void(const std::string&)> log;  // progress lines and the verdicts; empty: quiet
};

// Runs what is missing of the plan, then writes output/report.md. Throws when a step fails, with
// the end of its log.
void run_report(ReportOptions options);

// "m:ss" or "h:mm:ss".
std::string format_duration(double seconds);

}  // namespace shears::pipeline
