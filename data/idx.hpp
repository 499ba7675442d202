// IDX, the MNIST family's format (yann.lecun.com/exdb/mnist): a big-endian header — two zero
// bytes, an element type byte (0x08 = unsigned byte), the number of dimensions, then one uint32
// per dimension — followed by the elements, row-major. Read gzipped or raw. MNIST, Fashion-MNIST,
// KMNIST and EMNIST ship as four such files per set. (EMNIST stores each image transposed, as
// torchvision's EMNIST notes; we load the bytes as they are.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace shears::data {

// Where the Debian package dataset-fashion-mnist installs the four gzipped IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // prod(dims) bytes
};

// Reads an unsigned-byte IDX file of `ndims` dimensions. Throws shears::Error naming the file and
// the offset for a wrong magic number, element type or rank, a zero dimension, a header claiming
// more than max_bytes or more data than the file holds (both before allocating it: a raw file
// holds its size, a gzipped one at most deflate's 1032 times its size), truncated records and
// trailing bytes.
IdxArray read_idx(const std::string& path, int64_t ndims, int64_t max_bytes = default_max_bytes());

// Images (N, H, W) and labels (N) from two IDX files. Labels must be < classes.size(). With no
// classes given they are "0", "1", … up to the largest label, and every one of them must occur
// (a corrupt byte such as 0xFF would otherwise add hundreds of empty classes) except class 0,
// which may be absent and is then named "N/A" (EMNIST Letters labels its letters 1..26).
std::shared_ptr<InMemoryDataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                          std::vector<std::string> classes = {},
                                          int64_t max_bytes = default_max_bytes());

// A folder holding one set's four files, {train,test}-{images-idx3,labels-idx1}-ubyte, each raw
// or .gz and under any prefix; the test files may be called t10k-… (MNIST, Fashion-MNIST, KMNIST)
// or test-… (EMNIST's emnist-<split>-test-…). A second matching set in the folder is an error.
// Classes as for load_idx, inferred from the training labels and shared by both parts.
TrainTest load_idx_folder(const std::string& dir, std::vector<std::string> classes = {},
                          int64_t max_bytes = default_max_bytes());

// Whether `dir` holds a *train-images-idx3-ubyte[.gz] file, i.e. looks like such a folder.
bool has_idx_files(const std::string& dir);

// Fashion-MNIST (60,000 train / 10,000 test, 28×28, 10 classes) from `dir`; a missing copy says
// which path was searched and to run `make deps` (Debian package dataset-fashion-mnist).
TrainTest load_fashion_mnist(const std::string& dir = kFashionMnistDir);
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace shears::data
