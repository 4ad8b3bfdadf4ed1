#pragma once
// Checksums of byte ranges where they live: host memory on the CPU, device memory on its GPU
// (engine/cuda/). One algorithm everywhere (kernels/checksum/checksum.h), so a trainer and a
// receiver agree whatever their devices. Receivers check what landed with it (`checksum` in the
// job spec); trainers checksum their writes' source bytes through TrainerCompute.

#include "planner/plan.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace weightsync::engine {

struct ByteRange {
    const std::byte *data = nullptr;
    uint64_t bytes = 0;
};

class Checksummer {
  public:
    virtual ~Checksummer() = default;
    /// The checksums of `ranges`, in order; returns once they are computed.
    virtual std::vector<uint64_t> compute(std::span<const ByteRange> ranges) = 0;
};

/// For ranges in host memory (gpu < 0) or in the memory of CUDA device `gpu` (Errc::kUnsupported
/// in a build without CUDA).
std::unique_ptr<Checksummer> makeChecksummer(int gpu);

/// For each of `writes`, the index of the first write reading the same source bytes (the same
/// src_offset and bytes), its own index if none: a trainer checksums a range it sends to several
/// engines once.
std::vector<uint32_t> firstWithSameSource(std::span<const planner::Write> writes);

/// "0x" and 16 hex digits.
std::string checksumHex(uint64_t checksum);

}  // namespace weightsync::engine
