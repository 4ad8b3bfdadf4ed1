#include "kernels/checksum/checksum_ref.h"

#include "kernels/checksum/checksum.h"

#include <cstring>

namespace weightsync::kernels {

uint64_t checksumSumRef(const std::byte *data, uint64_t bytes) {
    const uint64_t words = bytes / 8;
    // Four independent sums keep the multiplier busy; the total is the same in any order.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint64_t j = 0;
    const auto load = [data](uint64_t word) {
        uint64_t w = 0;
        std::memcpy(&w, data + word * 8, 8);  // little-endian hosts only (x86-64, aarch64)
        return w;
    };
    for (; j + 4 <= words; j += 4) {
        s0 += checksumTerm(load(j), j);
        s1 += checksumTerm(load(j + 1), j + 1);
        s2 += checksumTerm(load(j + 2), j + 2);
        s3 += checksumTerm(load(j + 3), j + 3);
    }
    for (; j < words; ++j) s0 += checksumTerm(load(j), j);
    if (const uint64_t tail = bytes % 8; tail != 0) {
        uint64_t w = 0;
        std::memcpy(&w, data + words * 8, tail);
        s0 += checksumTerm(w, words);
    }
    return s0 + s1 + s2 + s3;
}

uint64_t checksumRef(const std::byte *data, uint64_t bytes) {
    return checksumFinal(checksumSumRef(data, bytes), bytes);
}

}  // namespace weightsync::kernels
