// Where a step's time goes, per op and per layer (shears bench --profile): while a Session is alive
// on a thread, every op's forward is timed by its OpScope (exclusive of ops it calls), attributed
// to the layer Module::call is in and to the op's kind, and the Node it records carries that
// entry, so autograd times its backward into the same entry. What no op accounts for — autograd's
// graph walk and gradient accumulation, the optimizer outside its scope, allocation between ops,
// waits — is the step's time minus the ops'. Off (no Session), a scope costs one thread-local load.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace shears::profile {

// One op kind in one layer, summed over the calls since the Session started (or was reset).
struct Entry {
  std::string layer;  // the module path, e.g. "layer1.0.conv1"; "" outside any module
  std::string kind;   // the op, e.g. "conv2d", "batch_norm", "relu", "optimizer"
  std::string path;   // the kernel path taken, where the op has a choice (convolutions)
  int64_t calls = 0;
  double forward_seconds = 0, backward_seconds = 0;
  double flops = 0;  // of the forwards (multiply-adds count 2); a backward of a conv or matmul does twice as many
  double bytes = 0;  // tensors read and written by the forwards: inputs and output, once each
};

class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void reset();                               // forget what was measured (after warm-up steps)
  const std::vector<Entry>& entries() const;  // in the order first seen
};

bool active();  // a Session is alive on this thread

// Times one op's forward (its own time: nested scopes' time goes to them). Inside a backward it
// does nothing: that time belongs to the backward of the op being differentiated.
class OpScope {
 public:
  explicit OpScope(const char* kind);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

  void add_flops(double flops);
  void set_path(const std::string& path);
  // The entry this scope adds to (recorded into autograd's Node), -1 when inactive.
  int64_t entry() const { return entry_; }

 private:
  void* session_ = nullptr;  // the session it was opened in: it closes only into that one
  int64_t entry_ = -1;
  std::chrono::steady_clock::time_point start_;
  double children_seconds_ = 0;
  OpScope* parent_ = nullptr;
};

// The entry of the innermost live OpScope on this thread (-1: none, or profiling off).
int64_t current_entry();
void add_bytes(int64_t entry, double bytes);

// Module::call: ops inside run in layer `parent.name`.
class LayerScope {
 public:
  explicit LayerScope(const std::string& name);
  ~LayerScope();
  LayerScope(const LayerScope&) = delete;
  LayerScope& operator=(const LayerScope&) = delete;

 private:
  void* session_ = nullptr;
};

// Autograd: the time of one Node's backward, into the entry its forward recorded, or with entry
// -1 into `kind` outside any layer (an op without an OpScope, autograd's gradient accumulation).
class BackwardScope {
 public:
  BackwardScope(int64_t entry, const char* kind);
  ~BackwardScope();
  BackwardScope(const BackwardScope&) = delete;
  BackwardScope& operator=(const BackwardScope&) = delete;

 private:
  void* session_ = nullptr;
  int64_t entry_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// The tables a user reads instead of torch.profiler, for `entries` summed over `steps` steps of
// `step_seconds` each: per op kind, then the `top_layers` slowest (layer, op) pairs, then the time
// outside any op. Times per step; GFLOP/s counts a conv's or matmul's backward as twice its forward.
std::string format_report(const std::vector<Entry>& entries, double step_seconds, int64_t steps,
                          size_t top_layers = 25);

}  // namespace shears::profile
