#pragma once
// The checksum (kernels/checksum/checksum.h) of device byte ranges on a CUDA stream: the same
// bits as checksumRef. Includable from plain C++.
//
// Ranges are cut into tiles of at most kChecksumTileWords words; one CTA sums a tile and adds it
// to its range's sum with a 64-bit atomic (the sum is commutative: any order gives the same
// bits). Tiles are built once on the host (checksumTiles) and kept in device memory by the
// caller, so that a plan's fixed ranges cost one launch per stage and nothing else.

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <vector>

namespace weightsync::kernels {

inline constexpr uint64_t kChecksumTileWords = uint64_t{1} << 16;  // 512 KiB per CTA

/// A byte range in device memory.
struct ChecksumRange {
    const void *data = nullptr;
    uint64_t bytes = 0;
};

/// One CTA's work: words [word_begin, word_end) of a range, added to sums[sum].
struct ChecksumTile {
    const void *data = nullptr;  // the range's first byte
    uint64_t bytes = 0;          // the range's length
    uint64_t word_begin = 0;
    uint64_t word_end = 0;
    uint32_t sum = 0;
};

/// Appends the tiles of `ranges` to `tiles`, range i adding to sums[first_sum + i]. An empty
/// range has no tile (its sum stays 0).
void checksumTiles(std::span<const ChecksumRange> ranges, uint32_t first_sum,
                   std::vector<ChecksumTile> &tiles);

/// Enqueues the sums of `count` tiles (a device array) on `stream`, adding each into its
/// device-memory sum (the caller zeroes the sums first, e.g. with cudaMemsetAsync). Returns the
/// launch error.
cudaError_t checksumSums(const ChecksumTile *tiles, uint32_t count, uint64_t *sums,
                         cudaStream_t stream);

}  // namespace weightsync::kernels
