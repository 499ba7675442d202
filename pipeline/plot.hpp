// A small SVG writer for line plots with error bands: the accuracy-vs-sparsity figure of
// `shears sweep` (docs/design.md#sweep-plots: one line per method, mean ± std across seeds as a
// band, the dense accuracy as a horizontal line).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/sweep_table.hpp"

namespace shears::pipeline {

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> spread;  // half-width of the band around y (e.g. one std); empty: no band
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::optional<double> reference;  // drawn as a dashed horizontal line, e.g. the dense accuracy
  std::string reference_label;
};

// The whole SVG document. Axes cover the data, bands and reference, rounded out to nice ticks.
std::string render_svg(const LinePlot& plot);

// Writes the SVG to `svg` and, when librsvg's rsvg-convert is on the PATH (Debian librsvg2-bin,
// installed by `make deps`), a PNG of it beside it (same name, .png). Returns whether the PNG was
// written (an older PNG is removed first); a missing or failing converter is not an error: the SVG
// is the figure.
bool write_plot(const LinePlot& plot, const std::filesystem::path& svg);

// Evenly spaced "nice" values (steps of 1, 2 or 5 × 10^k), about `target` of them, from a multiple
// of the step at or below lo to one at or above hi.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

// One line per method over sparsity in percent, a band where a cell has several seeds, the dense
// accuracy as the reference line.
LinePlot accuracy_plot(const Table& cells, const std::vector<std::string>& methods, double dense_top1);

}  // namespace shears::pipeline
