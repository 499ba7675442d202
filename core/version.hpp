#pragma once

namespace shears {
inline constexpr const char* kVersion = "0.1.0";
// The version of the checkpoint metadata schema (docs/checkpoints.md), written as "shears.schema".
// 1: files with no such key (architecture and options only); 2: the input contract ("input.*").
inline constexpr int kCheckpointSchema = 2;
}
