// The host checksummer, and the factory that picks host or CUDA.

#include "engine/checksum.h"

#include "common/error.h"
#include "kernels/checksum/checksum_ref.h"

#include <fmt/format.h>

#include <map>
#include <utility>

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

std::vector<uint32_t> firstWithSameSource(std::span<const planner::Write> writes) {
    std::map<std::pair<int64_t, int64_t>, uint32_t> first;  // (src_offset, bytes) -> index
    std::vector<uint32_t> out;
    out.reserve(writes.size());
    for (uint32_t i = 0; i < writes.size(); ++i) {
        out.push_back(first.try_emplace({writes[i].src_offset, writes[i].bytes}, i).first->second);
    }
    return out;
}

std::string checksumHex(uint64_t checksum) {
    return fmt::format("{:#018x}", checksum);
}

}  // namespace weightsync::engine
