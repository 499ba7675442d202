// The table `shears sweep` writes (sweep.csv, one row per method × sparsity × seed) and what
// `shears sweep` and `shears report` compute from it: top-1 mean ± std per cell.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace shears::pipeline {

// size and flops are the dense model's, as in metrics.json of `shears prune` (FLOPs = 2 × MACs).
extern const std::string kSweepHeader;

struct SweepRow {
  std::string method;
  double sparsity = 0;
  uint64_t seed = 0;
  double acc1 = 0;
};

// The rows of `csv` (none if the file is missing or empty). Throws for another header or a
// malformed row, naming the file and line.
std::vector<SweepRow> read_sweep_rows(const std::filesystem::path& csv);

struct Cell {
  double mean = 0, std = 0;
  int64_t n = 0;
};

using Table = std::map<std::string, std::map<double, Cell>>;  // method → sparsity → top-1 over seeds

// Top-1 over seeds per method and sparsity (sample std; 0 for a single seed).
Table aggregate(const std::vector<SweepRow>& rows);

}  // namespace shears::pipeline
