#pragma once
// Where a range of memory lives, as every layer names it.

#include <cstdint>

namespace weightsync {

enum class MemoryKind : uint8_t { kHost, kCuda };

}  // namespace weightsync
