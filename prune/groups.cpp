// Dependency groups by tracing one forward (docs/algorithms/baselines.md#dependency-groups).
#include "prune/groups.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "nn/layers.hpp"

namespace shears::prune {
namespace {

std::string join(const std::string& path, const char* name) { return path.empty() ? name : path + "." + name; }

enum class Kind { producer, norm, depthwise };

struct Call {
  std::string path, type;
  Kind kind;
  Tensor input, output;
  int64_t out_channels;
};

Kind kind_of_conv(const nn::Conv2d& conv, const std::string& path) {
  int64_t groups = conv.config().groups;
  if (groups == 1) return Kind::producer;
  SHEARS_CHECK(groups == conv.in_channels() && groups == conv.out_channels(), "dependency groups", "'", path,
               "' is a grouped conv with ", groups, " groups, ", conv.in_channels(), " in and ", conv.out_channels(),
               " out channels; only depthwise (groups = in = out) and ordinary convs can be pruned");
  return Kind::depthwise;
}

struct UnionFind {
  std::vector<size_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), size_t{0}); }
  size_t find(size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(size_t a, size_t b) {
    a = find(a), b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);  // the specials 0 (input), 1 (output) stay roots
  }
};

class Tracer {
 public:
  Tracer(const std::vector<Call>& calls, const Tensor& input) : input_(graph_identity(input)) {
    for (size_t i = 0; i < calls.size(); ++i) output_of_[graph_identity(calls[i].output)] = static_cast<int64_t>(i);
  }

  // The recorded layer calls (−1: the model input) whose outputs reach `t` without passing
  // through another recorded layer.
  const std::set<int64_t>& nearest(const Tensor& t) {
    const void* key = graph_identity(t);  // node inputs are stand-ins with the same identity
    auto memo = memo_.find(key);
    if (memo != memo_.end()) return memo->second;
    std::set<int64_t> out;
    if (auto it = output_of_.find(key); it != output_of_.end()) {
      out.insert(it->second);
    } else if (key == input_) {
      out.insert(-1);
    } else if (const auto& node = t.grad_fn()) {
      SHEARS_CHECK(node->op != "concat", "dependency groups",
                   "concatenation is not supported yet (channel offsets across a concat)");
      for (const Tensor& in : node->inputs)
        if (in.defined()) {
          const std::set<int64_t>& s = nearest(in);
          out.insert(s.begin(), s.end());
        }
    }
    return memo_[key] = std::move(out);
  }

 private:
  const void* input_;
  std::map<const void*, int64_t> output_of_;
  std::map<const void*, std::set<int64_t>> memo_;
};

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::producer: return "out";
    case Role::norm: return "norm";
    case Role::depthwise: return "depthwise";
    case Role::consumer: return "in";
  }
  return "?";
}

std::string Group::describe() const {
  std::ostringstream out;
  out << "group: " << channels << " channels\n";
  for (const std::string& e : edges) out << "  " << e << "\n";
  return out.str();
}

bool Group::contains(const std::string& module, Role role) const {
  return std::any_of(members.begin(), members.end(),
                     [&](const GroupMember& m) { return m.module == module && m.role == role; });
}

namespace {

std::vector<std::regex> compile_ignored(const std::vector<std::string>& ignored) {
  std::vector<std::regex> ignore;
  for (const std::string& p : ignored) {
    try {
      ignore.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(detail::concat("dependency groups: ignored pattern '", p, "' is not a valid regex (", e.what(), ")"));
    }
  }
  return ignore;
}

// One forward of `input` in eval mode, recording every Conv2d, Linear and BatchNorm call.
std::vector<Call> record_calls(nn::Module& model, const Tensor& input, Tensor& output) {
  std::map<const nn::Module*, std::string> path_of;
  for (auto& [path, m] : model.named_modules()) path_of[m] = path;
  std::vector<Call> calls;
  std::set<std::string> seen;
  bool was_training = model.is_training();
  model.eval();
  try {
    nn::ForwardObserver observer([&](const nn::Module& m, const Tensor& in, const Tensor& out) {
      Kind kind;
      int64_t channels;
      if (auto* conv = dynamic_cast<const nn::Conv2d*>(&m)) {
        kind = kind_of_conv(*conv, path_of.at(&m));
        channels = conv->out_channels();
      } else if (auto* fc = dynamic_cast<const nn::Linear*>(&m)) {
        kind = Kind::producer;
        channels = fc->out_features();
      } else if (auto* bn = dynamic_cast<const nn::BatchNorm*>(&m)) {
        kind = Kind::norm;
        channels = bn->num_features();
      } else {
        return;
      }
      const std::string& path = path_of.at(&m);
      SHEARS_CHECK(seen.insert(path).second, "dependency groups", "'", path,
                   "' is called more than once per forward; shared layers cannot be pruned by groups");
      calls.push_back({path, m.type_name(), kind, in, out, channels});
    });
    output = model(input);
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  return calls;
}

// The slices a call's layer contributes to its own group (as producer, depthwise layer or norm).
GroupMember member_of(const nn::Module& model, const Call& c) {
  GroupMember m{c.path, c.type, Role::producer, {}};
  if (c.kind == Kind::norm) {
    m.role = Role::norm;
    for (const char* p : {"weight", "bias"})
      if (model.has_parameter(join(c.path, p))) m.slices.push_back({join(c.path, p), 0, 1, false});
    for (const char* b : {"running_mean", "running_var"})
      if (model.has_buffer(join(c.path, b))) m.slices.push_back({join(c.path, b), 0, 1, true});
  } else {
    m.role = c.kind == Kind::depthwise ? Role::depthwise : Role::producer;
    m.slices.push_back({join(c.path, "weight"), 0, 1, false});
    if (model.has_parameter(join(c.path, "bias"))) m.slices.push_back({join(c.path, "bias"), 0, 1, false});
  }
  return m;
}

}  // namespace

std::vector<Group> dependency_groups(nn::Module& model, const Shape& input_shape,
                                     const std::vector<std::string>& ignored) {
  const std::vector<std::regex> ignore = compile_ignored(ignored);
  Tensor input = Tensor::ones(input_shape).requires_grad_(true), output;
  const std::vector<Call> calls = record_calls(model, input, output);

  // Union-find nodes: 0 the model input, 1 the model output, 2 + i the output of call i.
  UnionFind uf(calls.size() + 2);
  Tracer tracer(calls, input);
  auto node = [](int64_t call) { return call < 0 ? size_t{0} : static_cast<size_t>(call) + 2; };
  std::vector<std::string> edge_text;
  std::vector<size_t> edge_node;  // the node whose group an edge belongs to
  std::vector<size_t> consumer_input(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::set<int64_t>& from = tracer.nearest(calls[i].input);
    SHEARS_CHECK(!from.empty(), "dependency groups", "the input of '", calls[i].path,
                 "' does not depend on the model input");
    size_t first = node(*from.begin());
    for (int64_t j : from) {
      uf.unite(first, node(j));
      edge_text.push_back((j < 0 ? std::string("input") : calls[j].path) + " => " + calls[i].path);
      edge_node.push_back(first);
    }
    if (calls[i].kind == Kind::producer) consumer_input[i] = first;
    else uf.unite(first, node(static_cast<int64_t>(i)));
  }
  for (int64_t j : tracer.nearest(output)) {
    uf.unite(1, node(j));
    edge_text.push_back((j < 0 ? std::string("input") : calls[j].path) + " => output");
    edge_node.push_back(1);
  }

  std::map<size_t, Group> by_root;
  std::map<size_t, size_t> first_producer;
  std::set<size_t> dropped;
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& c = calls[i];
    size_t root = uf.find(node(static_cast<int64_t>(i)));
    if (c.kind == Kind::producer && !first_producer.count(root)) first_producer[root] = i;
    if (c.kind != Kind::norm && std::any_of(ignore.begin(), ignore.end(),
                                            [&](const std::regex& r) { return std::regex_match(c.path, r); }))
      dropped.insert(root);
    GroupMember m = member_of(model, c);
    Group& g = by_root[root];
    SHEARS_CHECK(g.channels == 0 || g.channels == c.out_channels, "dependency groups", "'", c.path, "' has ",
                 c.out_channels, " channels but is coupled with layers of ", g.channels);
    g.channels = c.out_channels;
    g.members.push_back(std::move(m));
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& c = calls[i];
    if (c.kind != Kind::producer) continue;
    size_t root = uf.find(consumer_input[i]);
    if (root < 2) continue;
    Group& g = by_root.at(root);
    // A Linear after a flatten reads `span` features per channel; a Conv2d reads the channels as they are.
    int64_t in = c.input.size(1);
    int64_t span = c.input.dim() == 2 ? in / g.channels : 1;
    SHEARS_CHECK(in % g.channels == 0 && (c.input.dim() == 2 || in == g.channels), "dependency groups", "'", c.path,
                 "' reads ", in, " input channels or features, which does not match the ", g.channels,
                 " channels it depends on");
    g.members.push_back({c.path, c.type, Role::consumer, {{join(c.path, "weight"), 1, span, false}}});
  }
  for (size_t e = 0; e < edge_text.size(); ++e) {
    size_t root = uf.find(edge_node[e]);
    if (root >= 2) by_root.at(root).edges.push_back(edge_text[e]);
  }

  std::vector<std::pair<size_t, Group>> ordered;
  for (auto& [root, g] : by_root)
    if (root >= 2 && first_producer.count(root) && !dropped.count(root))
      ordered.emplace_back(first_producer[root], std::move(g));
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Group> out;
  for (auto& [k, g] : ordered) out.push_back(std::move(g));
  return out;
}

void for_each_in_channel(const Shape& shape, const Slice& slice, int64_t c, const std::function<void(int64_t)>& fn) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < slice.dim; ++d) outer *= shape[d];
  for (size_t d = slice.dim + 1; d < shape.size(); ++d) inner *= shape[d];
  int64_t extent = shape[slice.dim];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = c * slice.span; k < (c + 1) * slice.span; ++k)
      for (int64_t i = 0; i < inner; ++i) fn((o * extent + k) * inner + i);
}

}  // namespace shears::prune
