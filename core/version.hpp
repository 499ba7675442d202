#pragma once

namespace shears {
inline constexpr const char* kVersion = "0.1.0";
}
