// Sparse checkpoints: pruned MLPNet and ResNet-18 round trips (logits, masks, file sizes), the index
// dtypes, safetensors' exact integers, one refusal per kind of bad triple, and the file read into
// PyTorch's sparse_csr_tensor as docs/checkpoints.md shows.
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/allocator.hpp"
#include "core/autograd.hpp"
#include "core/error.hpp"
#include "nn/layers.hpp"
#include "nn/models/registry.hpp"
#include "nn/sparse_checkpoint.hpp"
#include "prune/algorithms/baselines.hpp"
#include "prune/masks.hpp"
#include "tests/cli_helpers.hpp"

namespace shears {
namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using safetensors::Dtype;
using safetensors::Entry;
using safetensors::Integers;
using test::TempDir;

struct Net {
  const char* name;
  int64_t size, channels;
};
constexpr Net kNets[] = {{"mlpnet", 28, 1}, {"resnet18", 32, 3}};

nn::ModelOptions options_of(const Net& net) {
  nn::ModelOptions o;
  o.input_size = net.size, o.in_channels = net.channels;
  return o;
}

// 90% of every Conv2d and Linear weight but the depthwise ones, by magnitude, per layer.
std::shared_ptr<nn::Module> pruned(const Net& net) {
  Generator gen(41);
  auto model = nn::make_model(net.name, options_of(net), gen);
  std::vector<std::string> names;
  for (const std::string& n : prune::prunable_parameters(*model))
    if (model->parameter(n).dim() == 2 || model->parameter(n).size(1) > 1) names.push_back(n);
  prune::apply_masks(
      *model, prune::masks_from_scores(prune::magnitude_scores(*model, names), {0.9, prune::Distribution::per_layer}));
  model->eval();
  return model;
}

Tensor logits(nn::Module& model, const Net& net) {
  NoGradGuard no_grad;
  model.eval();
  return model(test::random_tensor({3, net.channels, net.size, net.size}, 42)).detach();
}

const Entry& entry(const safetensors::File& file, const std::string& name) {
  const Entry* e = file.find(name);
  INFO(name);
  REQUIRE(e != nullptr);
  return *e;
}

}  // namespace

TEST_CASE(
    "sparse checkpoints of pruned MLPNet and ResNet-18 reload with the same logits and masks, at a sixth of "
    "the dense size",
    "[sparse-checkpoint]") {
  for (const Net& net : kNets) {
    INFO(net.name);
    TempDir dir;
    const std::string sparse = dir.file("sparse.safetensors"), dense = dir.file("dense.safetensors");
    auto model = pruned(net);
    const NamedTensors masks = model->named_masks();
    REQUIRE(masks.size() >= 3);
    nn::save_sparse_checkpoint(*model, sparse, {{"epoch", "3"}});
    model->save_checkpoint(dense, {}, nn::MaskFormat::dense);
    const auto sparse_bytes = fs::file_size(sparse), dense_bytes = fs::file_size(dense);
    WARN(net.name << ": dense " << dense_bytes << " bytes, sparse " << sparse_bytes << " bytes ("
                  << double(sparse_bytes) / double(dense_bytes) << " of the dense)");
    CHECK(double(sparse_bytes) <= 0.17 * double(dense_bytes));

    // Each masked weight is a triple of the chosen dtypes, its shape in the metadata.
    const safetensors::File file = safetensors::load(sparse);
    CHECK(file.metadata.at("shears.sparse") == "csr");
    CHECK(file.metadata.at("shears.schema") == "3");  // dense files stay at 2
    CHECK(file.metadata.at("arch") == net.name);
    CHECK(file.metadata.at("epoch") == "3");
    for (const auto& [name, mask] : masks) {
      INFO(name);
      CHECK(file.find(name) == nullptr);
      CHECK(file.find(name + "_orig") == nullptr);
      const Entry &rows = entry(file, name + ".crow_indices"), &cols = entry(file, name + ".col_indices"),
                  &values = entry(file, name + ".values");
      CHECK(rows.dtype == Dtype::I32);
      CHECK(cols.dtype == Dtype::U16);
      CHECK(values.dtype == Dtype::F32);
      CHECK(rows.value.shape() == Shape{mask.size(0) + 1});
      int64_t kept = 0;
      for (int64_t i = 0; i < mask.numel(); ++i) kept += mask.data()[i] != 0.f;
      CHECK(values.value.numel() == kept);
      CHECK(kept <= mask.numel() / 10 + 1);
      std::string dims;
      for (int64_t d : mask.shape()) dims.append(dims.empty() ? "" : ",").append(std::to_string(d));
      CHECK(file.metadata.at("sparse." + name + ".shape") == dims);
    }
    if (std::string(net.name) == "resnet18")
      CHECK(file.metadata.at("sparse.layer1.0.conv1.weight.shape") == "64,64,3,3");

    // Back through load_model (what eval, prune and predict call) and load_checkpoint.
    const Tensor expected = logits(*model, net);
    auto rebuilt = nn::load_model(sparse);
    auto reloaded = nn::make_model(net.name, options_of(net));
    CHECK(reloaded->load_checkpoint(sparse).ok());
    for (nn::Module* loaded : {rebuilt.get(), reloaded.get()}) {
      CHECK(logits(*loaded, net).to_vector() == expected.to_vector());
      const NamedTensors got = loaded->named_masks();
      REQUIRE(got.size() == masks.size());
      for (size_t i = 0; i < masks.size(); ++i) {
        CHECK(got[i].first == masks[i].first);
        CHECK(got[i].second.to_vector() == masks[i].second.to_vector());
      }
      const auto mine = model->state_dict(nn::MaskFormat::dense), theirs = loaded->state_dict(nn::MaskFormat::dense);
      REQUIRE(mine.size() == theirs.size());
      for (size_t i = 0; i < mine.size(); ++i) {
        CHECK(mine[i].name == theirs[i].name);
        CHECK(mine[i].value.to_vector() == theirs[i].value.to_vector());
      }
    }
  }
}

TEST_CASE("sparse checkpoints choose the narrowest index dtypes PyTorch reads", "[sparse-checkpoint]") {
  CHECK(nn::row_index_dtype(0) == Dtype::I32);
  CHECK(nn::row_index_dtype(std::numeric_limits<int32_t>::max()) == Dtype::I32);
  CHECK(nn::row_index_dtype(int64_t{1} << 31) == Dtype::I64);
  CHECK(nn::column_index_dtype(65535) == Dtype::U16);
  CHECK(nn::column_index_dtype(65536) == Dtype::I32);
  for (int64_t in : {65535, 70000}) {
    INFO(in);
    Generator gen(43);
    nn::Linear layer(in, 2, true, gen), fresh(in, 2, true, gen);
    Tensor mask = Tensor::zeros({2, in});
    for (int64_t c : {int64_t{0}, in / 2, in - 1}) mask.data()[in + c] = 1.f;  // row 0 left empty
    layer.set_mask("weight", mask);
    const auto state = nn::sparse_state_dict(layer);
    const Entry* cols = nullptr;
    for (const Entry& e : state)
      if (e.name == "weight.col_indices") cols = &e;
    REQUIRE(cols != nullptr);
    CHECK(cols->dtype == (in < 65536 ? Dtype::U16 : Dtype::I32));
    CHECK(cols->integers->values == std::vector<int64_t>{0, in / 2, in - 1});
    TempDir dir;
    nn::save_sparse_checkpoint(layer, dir.file("l.safetensors"));
    CHECK(fresh.load_checkpoint(dir.file("l.safetensors")).ok());
    CHECK(fresh.mask("weight").to_vector() == mask.to_vector());
    CHECK(fresh.parameter("bias").to_vector() == layer.parameter("bias").to_vector());
  }
}

TEST_CASE("a fully pruned layer and an unmasked model round-trip; files without triples are left alone",
          "[sparse-checkpoint]") {
  Generator gen(44);
  nn::Linear layer(6, 4, true, gen), fresh(6, 4, true, gen);
  layer.set_mask("weight", Tensor::zeros({4, 6}));
  TempDir dir;
  nn::save_sparse_checkpoint(layer, dir.file("empty.safetensors"));
  safetensors::File file = safetensors::load(dir.file("empty.safetensors"));
  CHECK(entry(file, "weight.col_indices").integers->shape == Shape{0});
  CHECK(entry(file, "weight.crow_indices").integers->values == std::vector<int64_t>(5, 0));
  CHECK(fresh.load_checkpoint(dir.file("empty.safetensors")).ok());
  CHECK(fresh.mask("weight").to_vector() == std::vector<float>(24, 0.f));

  nn::Linear plain(6, 4, true, gen);
  nn::save_sparse_checkpoint(plain, dir.file("plain.safetensors"));
  file = safetensors::load(dir.file("plain.safetensors"));
  const auto before = file.tensors.size();
  nn::expand_sparse_entries(file, "plain.safetensors");
  CHECK(file.tensors.size() == before);
  CHECK(entry(file, "weight").value.to_vector() == plain.parameter("weight").to_vector());
}

TEST_CASE("safetensors keeps integer tensors exact beside their float32 values", "[sparse-checkpoint][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("ints.safetensors");
  const std::vector<int64_t> big{(int64_t{1} << 53) + 1, -(int64_t{1} << 62) - 3, std::numeric_limits<int64_t>::max()};
  safetensors::save(path, {{"big", {}, Dtype::I64, Integers{{3}, big}},
                           {"u16", {}, Dtype::U16, Integers{{2, 2}, {0, 1, 65534, 65535}}},
                           {"f", Tensor::from_vector({2}, {1.5f, 2.f}), Dtype::F32},
                           {"u8", Tensor::from_vector({2}, {7.f, 255.f}), Dtype::U8},
                           {"u64", Tensor::from_vector({1}, {18446742974197923840.f}), Dtype::U64}});
  safetensors::File file = safetensors::load(path);
  CHECK(entry(file, "big").integers->values == big);
  CHECK(entry(file, "big").value.to_vector() == std::vector<float>{0x1p53f, -0x1p62f, 0x1p63f});  // rounded
  CHECK(entry(file, "u16").integers->shape == Shape{2, 2});
  CHECK(entry(file, "u16").integers->values == std::vector<int64_t>{0, 1, 65534, 65535});
  CHECK_FALSE(entry(file, "f").integers);
  CHECK_FALSE(entry(file, "u8").integers);   // bytes: float32 holds them exactly
  CHECK_FALSE(entry(file, "u64").integers);  // beyond int64: the float value only, as before
  CHECK(entry(file, "u64").value.to_vector() == std::vector<float>{18446742974197923840.f});
  // Saving what was loaded writes the integers: the same bytes.
  safetensors::save(dir.file("again.safetensors"), file.tensors, file.metadata);
  std::ifstream a(path, std::ios::binary), b(dir.file("again.safetensors"), std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(a), {}) == std::string(std::istreambuf_iterator<char>(b), {}));

  // Every integer element costs 8 bytes more in memory, and Limits counts them.
  const std::string i32 = dir.file("i32.safetensors");
  safetensors::save(i32, {{"i", {}, Dtype::I32, Integers{{1000}, std::vector<int64_t>(1000, -5)}}});
  const uint64_t size = fs::file_size(i32);
  CHECK(safetensors::load(i32, {.max_bytes = size + 12000}).tensors.size() == 1);
  CHECK_THROWS_WITH(safetensors::load(i32, {.max_bytes = size + 11999}),
                    Contains("got " + std::to_string(size + 12000)));
}

TEST_CASE("the writer refuses integers their dtype, shape or value cannot hold, naming the tensor",
          "[sparse-checkpoint][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  auto refused = [&](Entry e, const std::string& message) {
    CHECK_THROWS_WITH(safetensors::save(path, {e}), Contains(path + ": tensor 'idx': ") && Contains(message));
    CHECK_FALSE(fs::exists(path));
  };
  refused({"idx", {}, Dtype::U16, Integers{{2}, {1, 65536}}},
          "integers: expected integers in [0, 65535] for U16, got 65536 at element 1");
  refused({"idx", {}, Dtype::U32, Integers{{1}, {-1}}}, "for U32, got -1 at element 0");
  refused({"idx", {}, Dtype::I32, Integers{{1}, {int64_t{1} << 31}}}, "for I32, got 2147483648 at element 0");
  refused({"idx", {}, Dtype::F32, Integers{{1}, {1}}}, "integers: expected an integer dtype");
  refused({"idx", {}, Dtype::U8, Integers{{1}, {1}}}, "got U8");
  refused({"idx", {}, Dtype::I64, Integers{{2, 2}, {1, 2, 3}}}, "expected 4 values (shape [2, 2]), got 3");
  refused({"idx", Tensor::from_vector({2}, {1.f, 5.f}), Dtype::I64, Integers{{2}, {1, 2}}},
          "value: expected the float32 of its integers (2; both are set");
  refused({"idx", Tensor::from_vector({1}, {1.f}), Dtype::I64, Integers{{2}, {1, 2}}}, "value: expected the shape");
}

TEST_CASE("bad CSR triples are refused, naming the file and the tensor", "[sparse-checkpoint][robustness]") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors"), bad = dir.file("bad.safetensors");
  nn::ModelOptions o;
  o.in_channels = 1, o.input_size = 4, o.num_classes = 3, o.widths = {8};
  Generator gen(45);
  auto model = nn::make_model("mlp", o, gen);  // fc1.weight: 8x16
  Tensor mask = Tensor::zeros({8, 16});
  for (int64_t i = 0; i < mask.numel(); i += 3) mask.data()[i] = 1.f;
  model->set_mask("fc1.weight", mask);
  nn::save_sparse_checkpoint(*model, good);
  const std::string w = "fc1.weight";
  REQUIRE(nn::make_model("mlp", o)->load_checkpoint(good).ok());

  auto edited = [&](auto edit) {
    safetensors::File file = safetensors::load(good);
    edit(file);
    return file;
  };
  // Indices written exactly as I32 (so negative ones can be), the float value reset.
  auto set_indices = [&](safetensors::File& file, const std::string& suffix, std::vector<int64_t> v) {
    for (Entry& e : file.tensors)
      if (e.name == w + suffix) e = {e.name, {}, Dtype::I32, Integers{{std::ssize(v)}, std::move(v)}};
  };
  const safetensors::File original = safetensors::load(good);
  const std::vector<int64_t> rows = original.find(w + ".crow_indices")->integers->values,
                             cols = original.find(w + ".col_indices")->integers->values;
  auto index_set = [&](const std::string& suffix, int64_t at, int64_t value) {  // at < 0: from the end
    return edited([&](safetensors::File& f) {
      std::vector<int64_t> v = suffix == ".col_indices" ? cols : rows;
      v[at < 0 ? std::ssize(v) + at : at] = value;
      set_indices(f, suffix, v);
    });
  };

  auto refused = [&](const safetensors::File& file, const std::string& tensor, const std::string& message) {
    safetensors::save(bad, file.tensors, file.metadata);
    INFO(message);
    AllocationLimit guard(std::size_t{16} << 20, "allocated more than the file justifies");
    CHECK_THROWS_WITH(nn::make_model("mlp", o)->load_checkpoint(bad),
                      Contains(bad + ": tensor '" + tensor + "'") && Contains(message));
    CHECK_THROWS_WITH(nn::load_model(bad), Contains(bad + ": tensor '" + tensor + "'") && Contains(message));
  };

  SECTION("indices out of range, negative, or of a float dtype") {
    refused(index_set(".col_indices", -1, 16), w + ".col_indices",
            "data: expected indices below 16 (the columns of the dense shape 8,16");
    refused(index_set(".col_indices", 0, -1), w + ".col_indices",
            "data: expected non-negative indices, got -1 at element 0");
    refused(index_set(".crow_indices", 1, -2), w + ".crow_indices",
            "data: expected non-negative indices, got -2 at element 1");
    refused(edited([&](auto& f) {
              for (Entry& e : f.tensors)
                if (e.name == w + ".col_indices") e = {e.name, e.value, Dtype::F32};
            }),
            w + ".col_indices", "dtype: expected an integer dtype (I8, I16, U16, I32, U32, I64 or U64), got F32");
    refused(edited([&](auto& f) {  // written from the float value: 2^64 - 2^40
              for (Entry& e : f.tensors)
                if (e.name == w + ".col_indices") {
                  e.value.data()[0] = 18446742974197923840.f;
                  e.integers.reset();
                  e.dtype = Dtype::U64;
                }
            }),
            w + ".col_indices", "data: expected indices below 2^63, got a larger U64");
  }
  SECTION("row pointers of the wrong length or order, values of the wrong length") {
    refused(edited([&](auto& f) {
              set_indices(f, ".crow_indices", {rows.begin(), rows.end() - 1});
            }),
            w + ".crow_indices", "shape: expected [9] (rows + 1 for the dense shape 8,16");
    refused(index_set(".crow_indices", 1, rows[2] + 1), w, "crow_indices decreases at row 1");
    refused(index_set(".crow_indices", -1, rows.back() - 1), w, "crow_indices must run from 0 to the");
    refused(index_set(".col_indices", 0, cols[1]), w, "not strictly ascending");
    refused(edited([&](auto& f) {
              for (Entry& e : f.tensors)
                if (e.name == w + ".values") e.value = Tensor::ones({e.value.numel() - 1});
            }),
            w, "values has");
  }
  SECTION("a missing member, or a missing, malformed or disagreeing shape") {
    for (const std::string suffix : {".crow_indices", ".col_indices", ".values"})
      refused(edited([&](auto& f) { std::erase_if(f.tensors, [&](const Entry& e) { return e.name == w + suffix; }); }),
              w + suffix, "entry: expected a tensor (of the CSR triple of 'fc1.weight'), got none");
    refused(edited([&](auto& f) { f.metadata.erase("sparse." + w + ".shape"); }), w,
            "metadata 'sparse.fc1.weight.shape': expected the dense shape");
    for (const std::string shape : {"8,x", "8,-16", "8,0", "128", "8,4,4", "", "8,16,", "99999999999999999999,1"})
      refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = shape; }), w,
              "expected 2 or 4 comma-separated positive integers, e.g. 64,64,3,3, got '" + shape + "'");
    refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "8,4"; }), w + ".col_indices",
            "expected indices below 4");
    refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "16,8"; }), w + ".crow_indices",
            "shape: expected [17]");
    // The same entries in another shape expand, and the strict load names the mismatch.
    safetensors::File reshaped = edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "8,4,2,2"; });
    safetensors::save(bad, reshaped.tensors, reshaped.metadata);
    CHECK_THROWS_WITH(nn::make_model("mlp", o)->load_checkpoint(bad),
                      Contains("fc1.weight_orig (model [8, 16], file [8, 4, 2, 2])"));
  }
  SECTION("shapes far beyond the file are refused before anything is allocated") {
    refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "1,1000000000000"; }), w,
            "expected at most 2^31 - 1 columns (entries per row), got 1000000000000");
    refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "1000000,1000000"; }), w,
            "more dense entries");
    refused(edited([&](auto& f) { f.metadata["sparse." + w + ".shape"] = "8,200000000"; }), w, "more dense entries");
    refused(edited([&](auto& f) { f.metadata["sparse.ghost.weight.shape"] = "100000,100000"; }), "ghost.weight",
            "more dense entries");
    safetensors::File file = safetensors::load(good);
    CHECK_THROWS_WITH(nn::expand_sparse_entries(file, "f", {.max_bytes = 8 * 128 - 1}),
                      Contains("f: tensor 'fc1.weight'") && Contains("more dense entries"));
  }
  SECTION("names the expansion would take, and another layout") {
    refused(edited([&](auto& f) {
              f.tensors.push_back({w + "_mask", Tensor::ones({8, 16}), Dtype::F32});
            }),
            w + "_mask", "expected no tensor of this name beside the CSR triple");
    safetensors::File file = edited([&](auto& f) { f.metadata["shears.sparse"] = "coo"; });
    CHECK_THROWS_WITH(nn::expand_sparse_entries(file, "f"), Contains("f: __metadata__: 'shears.sparse': expected csr"));
  }
}

TEST_CASE("a sparse checkpoint reads into PyTorch's sparse_csr_tensor as docs/checkpoints.md shows",
          "[sparse-checkpoint][python]") {
  if (test::run_command("/usr/bin/python3 -c 'import torch, numpy'").status != 0) {
    WARN("skipped: /usr/bin/python3 cannot import torch and numpy (apt install python3-torch)");
    return;
  }
  TempDir dir;
  const Net net = kNets[1];
  auto model = pruned(net);
  nn::save_sparse_checkpoint(*model, dir.file("sparse.safetensors"));
  model->save_checkpoint(dir.file("dense.safetensors"), {}, nn::MaskFormat::dense);
  std::ofstream(dir.file("read.py")) << R"(import sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[1])
from safetensors_np import load

tensors, meta = load(sys.argv[2])
state = {}
for key, text in meta.items():
    if not (key.startswith("sparse.") and key.endswith(".shape")):
        continue
    name, shape = key[len("sparse."):-len(".shape")], [int(d) for d in text.split(",")]
    csr = torch.sparse_csr_tensor(
        torch.from_numpy(tensors.pop(name + ".crow_indices").astype(np.int64)),
        torch.from_numpy(tensors.pop(name + ".col_indices").astype(np.int64)),
        torch.from_numpy(tensors.pop(name + ".values").copy()),
        size=(shape[0], int(np.prod(shape[1:]))))
    state[name] = csr.to_dense().reshape(shape)
state.update({name: torch.from_numpy(array.copy()) for name, array in tensors.items()})
dense, _ = load(sys.argv[3])
assert sorted(state) == sorted(dense), set(state) ^ set(dense)
for name, array in dense.items():
    assert np.array_equal(state[name].numpy(), array), name
print("ok", sum(key.startswith("sparse.") for key in meta))
)";
  const test::CommandResult r =
      test::run_command("/usr/bin/python3 " + dir.file("read.py") + " " SHEARS_FIXTURES "/../../tools " +
                        dir.file("sparse.safetensors") + " " + dir.file("dense.safetensors"));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("ok " + std::to_string(model->named_masks().size())) != std::string::npos);
}

}  // namespace shears
