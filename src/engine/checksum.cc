// The host checksummer, and the factory that picks host or CUDA.

#include "engine/checksum.h"

#include "common/error.h"
#include "kernels/checksum/checksum_ref.h"

#include <fmt/format.h>

namespace weightsync::engine {

#if WEIGHTSYNC_HAVE_CUDA
// engine/cuda/checksum_cuda.cc
std::unique_ptr<Checksummer> makeCudaChecksummer(int gpu);
#endif

namespace {

class HostChecksummer : public Checksummer {
  public:
    std::vector<uint64_t> compute(std::span<const ByteRange> ranges) override {
        std::vector<uint64_t> out;
        out.reserve(ranges.size());
        for (const ByteRange &r : ranges) out.push_back(kernels::checksumRef(r.data, r.bytes));
        return out;
    }
};

}  // namespace

std::unique_ptr<Checksummer> makeChecksummer(int gpu) {
    if (gpu < 0) return std::make_unique<HostChecksummer>();
#if WEIGHTSYNC_HAVE_CUDA
    return makeCudaChecksummer(gpu);
#else
    fail(Errc::kUnsupported,
         "checksums of device memory need a weightsync built with CUDA (GPU {} asked)", gpu);
#endif
}

std::string checksumHex(uint64_t checksum) {
    return fmt::format("{:#018x}", checksum);
}

}  // namespace weightsync::engine
