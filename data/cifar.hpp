// CIFAR-10 and CIFAR-100 in their binary versions (cs.toronto.edu/~kriz/cifar.html): fixed-size
// records of label byte(s) then 3072 pixel bytes, 32×32 per channel R, G, B — already (C, H, W).
//   CIFAR-10:  data_batch_1.bin … data_batch_5.bin (train), test_batch.bin; 1 label byte.
//   CIFAR-100: train.bin, test.bin; a coarse (20 superclasses) then a fine (100 classes) byte.
// `dir` is the folder with the .bin files or the one the archive was unpacked in (holding
// cifar-10-batches-bin/ or cifar-100-binary/). Class names come from batches.meta.txt,
// fine_label_names.txt or coarse_label_names.txt when present, else "0", "1", ….
#pragma once
#include <string>

#include "data/dataset.hpp"

namespace shears::data {

// max_bytes caps the pixels of each part (train, test) in memory: a record past it is refused
// before it is stored (the files may be gzipped, and a small one can inflate to anything).
TrainTest load_cifar10(const std::string& dir, int64_t max_bytes = default_max_bytes());

enum class Cifar100Labels { fine, coarse };
TrainTest load_cifar100(const std::string& dir, Cifar100Labels labels = Cifar100Labels::fine,
                        int64_t max_bytes = default_max_bytes());

// Whether `dir` (or its archive subfolder) holds data_batch_1.bin, resp. train.bin.
bool has_cifar10_files(const std::string& dir);
bool has_cifar100_files(const std::string& dir);

}  // namespace shears::data
