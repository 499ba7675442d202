#pragma once

namespace shears {
inline constexpr const char* kVersion = "0.1.0";
// The version of the checkpoint metadata schema (docs/checkpoints.md), written as "shears.schema".
// 1: files with no such key (architecture and options only); 2: the input contract ("input.*");
// 3: pruned weights stored compressed (nn/sparse_checkpoint.hpp). A file is written with the
// lowest version that describes it, so dense files stay readable by shears that read 2.
inline constexpr int kCheckpointSchema = 3;       // the newest this shears reads
inline constexpr int kDenseCheckpointSchema = 2;  // files without compressed tensors
}
