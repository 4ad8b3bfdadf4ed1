// Host side of the CUDA checksum: cutting ranges into tiles.

#include "kernels/checksum/checksum.cuh"

#include "common/error.h"

#include <algorithm>
#include <limits>

namespace weightsync::kernels {

void checksumTiles(std::span<const ChecksumRange> ranges, uint32_t first_sum,
                   std::vector<ChecksumTile> &tiles) {
    check(first_sum + ranges.size() <= std::numeric_limits<uint32_t>::max(), Errc::kInvalidArgument,
          "checksum: {} sums do not fit a 32-bit index", first_sum + ranges.size());
    for (size_t i = 0; i < ranges.size(); ++i) {
        const ChecksumRange &r = ranges[i];
        check(r.data != nullptr || r.bytes == 0, Errc::kInvalidArgument,
              "checksum: range {} of {} bytes has no memory", i, r.bytes);
        const uint64_t words = (r.bytes + 7) / 8;
        for (uint64_t w = 0; w < words; w += kChecksumTileWords) {
            tiles.push_back({r.data, r.bytes, w, std::min(words, w + kChecksumTileWords),
                             static_cast<uint32_t>(first_sum + i)});
        }
    }
}

}  // namespace weightsync::kernels
