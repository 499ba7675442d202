#include "pipeline/sweep_table.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace shears::pipeline {

namespace fs = std::filesystem;

const std::string kSweepHeader = "method,sparsity,seed,acc1,acc5,loss,actual_sparsity,size,size_nz,flops,flops_nz,seconds";

std::vector<SweepRow> read_sweep_rows(const fs::path& csv) {
  std::vector<SweepRow> rows;
  std::ifstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return rows;
  SHEARS_CHECK(line == kSweepHeader, csv.string(), "is not a sweep table of this version (header '", line,
               "'); use a new --output folder");
  for (int64_t number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream s(line);
    for (std::string field; std::getline(s, field, ',');) fields.push_back(field);
    auto malformed = [&] {
      return Error(csv.string() + ":" + std::to_string(number) + ": malformed row '" + line +
                   "'; delete it to rerun that cell");
    };
    if (fields.size() != 12) throw malformed();
    try {
      rows.push_back({fields[0], std::stod(fields[1]), std::stoull(fields[2]), std::stod(fields[3])});
    } catch (const std::logic_error&) {  // std::invalid_argument, std::out_of_range
      throw malformed();
    }
  }
  return rows;
}

Table aggregate(const std::vector<SweepRow>& rows) {
  std::map<std::string, std::map<double, std::vector<double>>> values;
  for (const SweepRow& r : rows) values[r.method][r.sparsity].push_back(r.acc1);
  Table cells;
  for (const auto& [method, by_sparsity] : values)
    for (const auto& [sparsity, v] : by_sparsity) {
      Cell cell{0, 0, static_cast<int64_t>(v.size())};
      for (double a : v) cell.mean += a / cell.n;
      for (double a : v) cell.std += (a - cell.mean) * (a - cell.mean);
      cell.std = cell.n > 1 ? std::sqrt(cell.std / (cell.n - 1)) : 0.0;
      cells[method][sparsity] = cell;
    }
  return cells;
}

}  // namespace shears::pipeline
