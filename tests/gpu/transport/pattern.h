#pragma once
// The byte pattern both sides of the CUDA IPC tests agree on: a pure function of (seed, offset).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace weightsync::transport::test_support {

inline std::vector<uint8_t> pattern(uint64_t seed, size_t bytes) {
    std::vector<uint8_t> out(bytes);
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < bytes; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(out.data() + i, &x, std::min<size_t>(8, bytes - i));
    }
    return out;
}

}  // namespace weightsync::transport::test_support
