// The sweep figure (pipeline/plot.hpp): ticks that cover the data in steps of 1, 2 or 5 × 10^k, an
// SVG that draws every series and the reference, mismatched series refused.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.hpp"
#include "pipeline/plot.hpp"

using namespace shears;

TEST_CASE("nice_ticks cover the range in steps of 1, 2 or 5 times a power of ten", "[plot]") {
  for (auto [lo, hi] : {std::pair{0.0, 87.5}, {12.3, 12.9}, {-3.0, 41.0}, {5.0, 5.0}, {0.0, 1e6}}) {
    INFO(lo << " .. " << hi);
    const std::vector<double> t = pipeline::nice_ticks(lo, hi);
    REQUIRE(t.size() >= 2);
    CHECK(t.front() <= lo);
    CHECK(t.back() >= hi);
    const double step = t[1] - t[0], mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
    bool nice = false;  // (10 for a step a rounding below a power of ten)
    for (double m : {1.0, 2.0, 5.0, 10.0}) nice = nice || std::abs(mantissa / m - 1) < 1e-6;
    CHECK(nice);
    for (size_t i = 1; i < t.size(); ++i) CHECK(t[i] - t[i - 1] == Approx(step));
  }
  CHECK_THROWS_AS(pipeline::nice_ticks(2, 1), Error);
  CHECK_THROWS_AS(pipeline::nice_ticks(0, NAN), Error);
}

TEST_CASE("render_svg draws every series, its band and the reference; mismatched series are refused", "[plot]") {
  pipeline::LinePlot plot;
  plot.title = "accuracy";
  plot.series.push_back({"magnitude", {50, 90}, {85, 70}, {0.5, 1.5}});
  plot.series.push_back({"swap", {50, 90}, {86, 80}, {}});
  plot.reference = 87.7;
  plot.reference_label = "dense";
  const std::string svg = pipeline::render_svg(plot);
  CHECK(svg.starts_with("<svg"));
  CHECK(svg.find("</svg>") != std::string::npos);
  for (const char* text : {"magnitude", "swap", "dense", "accuracy"}) CHECK(svg.find(text) != std::string::npos);
  plot.series.push_back({"broken", {1, 2, 3}, {1, 2}, {}});
  CHECK_THROWS_WITH(pipeline::render_svg(plot), Catch::Contains("'broken'"));
}
