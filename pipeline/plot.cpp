#include "pipeline/plot.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "core/error.hpp"

extern char** environ;  // the process environment, passed on to the converter

namespace shears::pipeline {

namespace {

// Tableau 10: distinguishable, and readable in grey print.
const char* const kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                               "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr double kWidth = 680, kHeight = 420;
constexpr double kLeft = 64, kRight = 170, kTop = 44, kBottom = 56;  // margins around the axes

std::string escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '&') out += "&amp;";
    else if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else out += ch;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A tick label with as many decimals as the step needs.
std::string tick_label(double v, double step) {
  int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-9 ? 0.0 : v);
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  SHEARS_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && target > 0, "nice_ticks", "invalid range [", lo,
               ", ", hi, "]");
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {  // a single value: one unit around it
    lo -= 1;
    hi += 1;
  }
  double raw = (hi - lo) / target, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * (raw / magnitude < 1.5 ? 1 : raw / magnitude < 3.5 ? 2 : raw / magnitude < 7.5 ? 5 : 10);
  std::vector<double> ticks;
  for (double k = std::floor(lo / step + 1e-9); k <= std::ceil(hi / step - 1e-9); ++k) ticks.push_back(k * step);
  return ticks;
}

std::string render_svg(const LinePlot& plot) {
  Range xr, yr;
  for (const Series& s : plot.series) {
    SHEARS_CHECK(s.x.size() == s.y.size() && (s.spread.empty() || s.spread.size() == s.y.size()), "render_svg",
                 "series '", s.label, "' has ", s.x.size(), " x, ", s.y.size(), " y and ", s.spread.size(), " spread values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      double d = s.spread.empty() ? 0.0 : s.spread[i];
      xr.add(s.x[i]);
      yr.add(s.y[i] - d);
      yr.add(s.y[i] + d);
    }
  }
  if (plot.reference) yr.add(*plot.reference);
  SHEARS_CHECK(xr.lo <= xr.hi, "render_svg", "nothing to plot");
  std::vector<double> xt = nice_ticks(xr.lo, xr.hi), yt = nice_ticks(yr.lo, yr.hi);
  double x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return kTop + (y1 - y) / (y1 - y0) * ph; };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" + num(kHeight) +
                    "\" viewBox=\"0 0 " + num(kWidth) + " " + num(kHeight) +
                    "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + num(kLeft + pw / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">" +
         escape(plot.title) + "</text>\n";
  for (double t : xt) {  // vertical grid lines and x tick labels
    svg += "<line x1=\"" + num(px(t)) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(px(t)) + "\" y2=\"" + num(kTop + ph) +
           "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + num(px(t)) + "\" y=\"" + num(kTop + ph + 18) + "\" text-anchor=\"middle\">" +
           tick_label(t, xt[1] - xt[0]) + "</text>\n";
  }
  for (double t : yt) {
    svg += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(py(t)) + "\" x2=\"" + num(kLeft + pw) + "\" y2=\"" + num(py(t)) +
           "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + num(kLeft - 8) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" +
           tick_label(t, yt[1] - yt[0]) + "</text>\n";
  }
  svg += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
         "\" fill=\"none\" stroke=\"#333\"/>\n";
  svg += "<text x=\"" + num(kLeft + pw / 2) + "\" y=\"" + num(kHeight - 14) + "\" text-anchor=\"middle\">" +
         escape(plot.x_label) + "</text>\n";
  svg += "<text transform=\"translate(18 " + num(kTop + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         escape(plot.y_label) + "</text>\n";

  std::string legend;
  double ly = kTop + 8;
  auto legend_entry = [&](const std::string& label, const std::string& style) {
    legend += "<line x1=\"" + num(kLeft + pw + 14) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(kLeft + pw + 38) +
              "\" y2=\"" + num(ly) + "\" " + style + "/>\n";
    legend += "<text x=\"" + num(kLeft + pw + 44) + "\" y=\"" + num(ly + 4) + "\">" + escape(label) + "</text>\n";
    ly += 20;
  };
  if (plot.reference) {
    std::string style = "stroke=\"#555\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"";
    svg += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(py(*plot.reference)) + "\" x2=\"" + num(kLeft + pw) + "\" y2=\"" +
           num(py(*plot.reference)) + "\" " + style + "/>\n";
    legend_entry(plot.reference_label, style);
  }
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const Series& s = plot.series[k];
    std::string color = kColors[k % std::size(kColors)];
    std::vector<size_t> order(s.x.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s.x[a] < s.x[b]; });
    if (!s.spread.empty()) {  // the band: upper edge left to right, lower edge back
      std::string points;
      for (size_t i : order) points += num(px(s.x[i])) + "," + num(py(s.y[i] + s.spread[i])) + " ";
      for (auto it = order.rbegin(); it != order.rend(); ++it)
        points += num(px(s.x[*it])) + "," + num(py(s.y[*it] - s.spread[*it])) + " ";
      svg += "<polygon points=\"" + points + "\" fill=\"" + color + "\" fill-opacity=\"0.2\" stroke=\"none\"/>\n";
    }
    std::string points;
    for (size_t i : order) points += num(px(s.x[i])) + "," + num(py(s.y[i])) + " ";
    svg += "<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    for (size_t i : order)
      svg += "<circle cx=\"" + num(px(s.x[i])) + "\" cy=\"" + num(py(s.y[i])) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    legend_entry(s.label, "stroke=\"" + color + "\" stroke-width=\"2\"");
  }
  return svg + legend + "</svg>\n";
}

bool write_plot(const LinePlot& plot, const std::filesystem::path& svg) {
  {
    std::ofstream out(svg);
    out << render_svg(plot);
    out.close();
    SHEARS_CHECK(!out.fail(), svg.string(), "cannot write the plot");
  }
  std::filesystem::path png = svg;
  png.replace_extension(".png");
  std::error_code ignored;
  std::filesystem::remove(png, ignored);  // never leave an older PNG beside a new SVG
  std::vector<std::string> args{"rsvg-convert", "--background-color=white", "--output", png.string(), "--",
                                svg.string()};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t quiet;  // the converter's complaints are not ours; the caller reports the PNG or not
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int spawned = posix_spawnp(&pid, "rsvg-convert", &quiet, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&quiet);
  if (spawned != 0) return false;
  int status = 0, waited = 0;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  return waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && std::filesystem::exists(png);
}

LinePlot accuracy_plot(const Table& cells, const std::vector<std::string>& methods, double dense_top1) {
  LinePlot plot;
  char dense_label[64];
  std::snprintf(dense_label, sizeof dense_label, "dense (%.2f%%)", dense_top1);
  plot.reference = dense_top1;
  plot.reference_label = dense_label;
  bool bands = false;
  for (const std::string& m : methods) {
    Series s{m, {}, {}, {}};
    bool band = false;
    for (const auto& [sparsity, cell] : cells.at(m)) {
      s.x.push_back(100 * sparsity);
      s.y.push_back(cell.mean);
      s.spread.push_back(cell.std);
      band |= cell.n > 1;
    }
    if (!band) s.spread.clear();
    bands |= band;
    plot.series.push_back(std::move(s));
  }
  plot.y_label = bands ? "top-1 accuracy (%), mean ± std over seeds" : "top-1 accuracy (%)";
  return plot;
}

}  // namespace shears::pipeline
