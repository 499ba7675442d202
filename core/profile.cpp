#include "core/profile.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <utility>

#include "core/error.hpp"

namespace shears::profile {

namespace {

using Clock = std::chrono::steady_clock;

struct State {
  std::vector<Entry> entries;
  std::map<std::pair<std::string, std::string>, int64_t> index;  // (layer, kind) -> entry
  std::vector<std::string> layers;                               // the LayerScope stack
  OpScope* innermost = nullptr;
  int backward_depth = 0;
};

thread_local State* state = nullptr;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int64_t entry_for(const char* kind) {
  std::string layer;
  for (const std::string& name : state->layers) layer += (layer.empty() ? "" : ".") + name;
  auto [it, fresh] = state->index.try_emplace({layer, kind}, static_cast<int64_t>(state->entries.size()));
  if (fresh) state->entries.push_back({.layer = layer, .kind = kind});
  return it->second;
}

}  // namespace

Session::Session() {
  SHEARS_CHECK(state == nullptr, "profile", "a profiling session is already running on this thread");
  state = new State;
}

Session::~Session() {
  delete state;
  state = nullptr;
}

void Session::reset() {
  for (Entry& e : state->entries) e = {.layer = e.layer, .kind = e.kind, .path = e.path};
}

const std::vector<Entry>& Session::entries() const { return state->entries; }

bool active() { return state != nullptr; }

OpScope::OpScope(const char* kind) {
  if (!state || state->backward_depth > 0) return;
  session_ = state;
  entry_ = entry_for(kind);
  parent_ = state->innermost;
  state->innermost = this;
  start_ = Clock::now();
}

OpScope::~OpScope() {
  if (entry_ < 0 || state != session_) return;
  const double elapsed = seconds_since(start_);
  Entry& e = state->entries[entry_];
  e.forward_seconds += elapsed - children_seconds_;
  e.calls += 1;
  if (parent_) parent_->children_seconds_ += elapsed;
  state->innermost = parent_;
}

void OpScope::add_flops(double flops) {
  if (entry_ >= 0 && state == session_) state->entries[entry_].flops += flops;
}

void OpScope::set_path(const std::string& path) {
  if (entry_ >= 0 && state == session_) state->entries[entry_].path = path;
}

int64_t current_entry() {
  return state && state->innermost && state->backward_depth == 0 ? state->innermost->entry() : -1;
}

void add_bytes(int64_t entry, double bytes) {
  if (state && entry >= 0 && entry < static_cast<int64_t>(state->entries.size())) state->entries[entry].bytes += bytes;
}

LayerScope::LayerScope(const std::string& name) {
  if (!state) return;
  state->layers.push_back(name);
  session_ = state;
}

LayerScope::~LayerScope() {
  if (session_ && state == session_) state->layers.pop_back();
}

BackwardScope::BackwardScope(int64_t entry, const char* kind) : session_(state), entry_(state ? entry : -1) {
  if (!state) return;
  if (entry_ < 0 && state->backward_depth == 0) {  // a backward of its own: it counts the calls
    entry_ = entry_for(kind);
    state->entries[entry_].calls += 1;
  }
  ++state->backward_depth;
  start_ = Clock::now();
}

BackwardScope::~BackwardScope() {
  if (!session_ || state != session_) return;
  --state->backward_depth;
  if (entry_ >= 0 && entry_ < static_cast<int64_t>(state->entries.size()))
    state->entries[entry_].backward_seconds += seconds_since(start_);
}

namespace {

// A conv's or matmul's backward computes dx and dW, each as many FLOPs as the forward.
double backward_flops(const Entry& e) {
  return e.kind == "conv2d" || e.kind == "linear" || e.kind == "matmul" ? 2 * e.flops : 0.0;
}

std::string rate(double amount, double seconds, double unit) {
  if (amount <= 0 || seconds <= 0) return "";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", amount / seconds / unit);
  return text;
}

void append_row(std::string& out, const std::string& name, const std::string& path, const Entry& e, double step_ms,
                int64_t steps) {
  const double fwd = 1e3 * e.forward_seconds / steps, bwd = 1e3 * e.backward_seconds / steps;
  char line[512];
  std::snprintf(line, sizeof line, "%-36.36s %-42.42s %6.1f %9.3f %9.3f %9.3f %6.1f%% %8s %8s\n", name.c_str(),
                path.c_str(), static_cast<double>(e.calls) / steps, fwd, bwd, fwd + bwd, 100 * (fwd + bwd) / step_ms,
                rate(e.flops + backward_flops(e), e.forward_seconds + e.backward_seconds, 1e9).c_str(),
                rate(e.bytes, e.forward_seconds, 1e9).c_str());
  out += line;
}

}  // namespace

std::string format_report(const std::vector<Entry>& entries, double step_seconds, int64_t steps, size_t top_layers) {
  SHEARS_CHECK(steps > 0 && step_seconds > 0, "profile", "no steps measured");
  const double step_ms = 1e3 * step_seconds;
  char header[256];
  std::snprintf(header, sizeof header, "%-36s %-42s %6s %9s %9s %9s %7s %8s %8s\n", "", "kernel path (fwd / dx / dW)",
                "calls", "fwd ms", "bwd ms", "total ms", "step", "GFLOP/s", "GB/s fwd");
  std::map<std::string, Entry> kinds;  // summed over layers
  std::vector<std::string> order;
  double ops_seconds = 0;
  for (const Entry& e : entries) {
    auto [it, fresh] = kinds.try_emplace(e.kind, Entry{.kind = e.kind});
    if (fresh) order.push_back(e.kind);
    Entry& k = it->second;
    k.calls += e.calls;
    k.forward_seconds += e.forward_seconds;
    k.backward_seconds += e.backward_seconds;
    k.flops += e.flops;
    k.bytes += e.bytes;
    ops_seconds += e.forward_seconds + e.backward_seconds;
  }
  const auto total = [](const Entry& e) { return e.forward_seconds + e.backward_seconds; };
  std::sort(order.begin(), order.end(),
            [&](const auto& a, const auto& b) { return total(kinds[a]) > total(kinds[b]); });
  std::string out = "per op kind, per step\n" + std::string(header);
  for (const std::string& kind : order) append_row(out, kind, "", kinds[kind], step_ms, steps);
  std::vector<const Entry*> slowest;
  for (const Entry& e : entries) slowest.push_back(&e);
  std::sort(slowest.begin(), slowest.end(), [&](const Entry* a, const Entry* b) { return total(*a) > total(*b); });
  if (slowest.size() > top_layers) slowest.resize(top_layers);
  out += "\nslowest layers, per step\n" + std::string(header);
  for (const Entry* e : slowest)
    append_row(out, (e->layer.empty() ? "-" : e->layer) + " " + e->kind, e->path, *e, step_ms, steps);
  const double outside_ms = step_ms - 1e3 * ops_seconds / steps;
  char tail[256];
  std::snprintf(tail, sizeof tail,
                "\nstep %.3f ms: ops %.3f ms, outside any op %.3f ms (%.1f%%: autograd's graph walk, allocation "
                "between ops, the step's own code)\n",
                step_ms, step_ms - outside_ms, outside_ms, 100 * outside_ms / step_ms);
  return out + tail;
}

}  // namespace shears::profile
