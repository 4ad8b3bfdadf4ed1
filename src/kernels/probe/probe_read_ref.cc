#include "kernels/probe/probe_read_ref.h"

#include <cstring>

namespace weightsync::kernels {

uint64_t probeFoldRef(const std::byte *data, uint64_t bytes) {
    uint64_t sum = 0;
    uint64_t at = 0;
    for (; at + 8 <= bytes; at += 8) {
        uint64_t w = 0;
        std::memcpy(&w, data + at, 8);  // the hosts weightsync runs on are little-endian
        sum += w;
    }
    uint64_t last = 0;
    for (uint64_t b = 0; at + b < bytes; ++b) {
        last |= static_cast<uint64_t>(std::to_integer<uint8_t>(data[at + b])) << (8 * b);
    }
    return sum + last;
}

}  // namespace weightsync::kernels
