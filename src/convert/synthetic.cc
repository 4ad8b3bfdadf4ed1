#include "convert/synthetic.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace weightsync::convert {

namespace {

inline uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Magnitude of one 128x128 block: a power of two in [2^-12, 2^4], or 0 for about 1 block in 64.
// Fixed across steps, as weight magnitudes are.
inline float blockScale(uint64_t key, int64_t g, int64_t rb, int64_t cb) {
    const uint64_t h = mix(key ^ mix(static_cast<uint64_t>(g) * 0x100000001b3ULL ^
                                     static_cast<uint64_t>(rb) << 20 ^ static_cast<uint64_t>(cb)));
    if ((h & 63U) == 0) return 0.0f;
    const int exponent = static_cast<int>((h >> 8) % 17) - 12;
    return std::ldexp(1.0f, exponent);
}

}  // namespace

void copyFromWholeTensor(const layout::Layout &layout, uint32_t index, const std::byte *tensor,
                         int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *out) {
    const layout::SourceTensor &s = layout.sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    const size_t row_bytes = static_cast<size_t>(e.c) * dtypeSize(s.dtype);
    auto *to = static_cast<std::byte *>(out);
    for (int64_t g = g0; g < g0 + groups; ++g) {
        std::memcpy(to, tensor + static_cast<size_t>(g * e.r + r0) * row_bytes,
                    static_cast<size_t>(rows) * row_bytes);
        to += static_cast<size_t>(rows) * row_bytes;
    }
}

void syntheticFill(const layout::Layout &layout, uint32_t index, uint64_t seed, uint64_t step,
                   int64_t g0, int64_t groups, int64_t r0, int64_t rows, void *out) {
    const layout::SourceTensor &s = layout.sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    check(g0 >= 0 && g0 + groups <= e.g && r0 >= 0 && r0 + rows <= e.r, Errc::kInvalidArgument,
          "synthetic box outside '{}'", s.name);
    const uint64_t key = mix(seed ^ mix(index + 1));
    const uint64_t step_key = mix(key ^ mix(step + 0x5151));
    const bool bf16 = s.dtype == DType::kBF16;
    auto *out16 = static_cast<uint16_t *>(out);
    auto *out32 = static_cast<float *>(out);
    size_t at = 0;
    for (int64_t g = g0; g < g0 + groups; ++g) {
        for (int64_t r = r0; r < r0 + rows; ++r) {
            const uint64_t row_key = step_key ^ mix(static_cast<uint64_t>(g * e.r + r));
            for (int64_t c0 = 0; c0 < e.c; c0 += kFp8BlockSize) {
                const float scale = blockScale(key, g, r / kFp8BlockSize, c0 / kFp8BlockSize);
                const int64_t c1 = std::min(e.c, c0 + kFp8BlockSize);
                for (int64_t c = c0; c < c1; ++c, ++at) {
                    const uint64_t h = mix(row_key + static_cast<uint64_t>(c));
                    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
                    const float v = (2.0f * u - 1.0f) * scale;
                    if (bf16) {
                        out16[at] = f32ToBf16Bits(v);
                    } else {
                        out32[at] = v;
                    }
                }
            }
        }
    }
}

ShardBox trainerShardBox(const layout::Layout &layout, uint32_t index,
                         const planner::TrainerMesh &mesh, int rank) {
    const layout::SourceTensor &s = layout.sources()[index];
    const bool expert = s.expert_dim == 0;
    const layout::Extent3 e = layout::sourceExtent(s);
    if (expert) {
        const int64_t per = e.g % mesh.fsdp == 0 ? e.g / mesh.fsdp : 0;
        return {per > 0 ? mesh.firstExpert(rank, e.g) : 0, per, 0, e.r};
    }
    if (s.fsdp_dim != 0) return {0, 1, 0, e.r};
    const int64_t chunk = layout::ceilDiv(e.r, mesh.fsdp);
    const int64_t lo = std::min(e.r, chunk * mesh.fsdpIndex(rank));
    return {0, 1, lo, std::min(e.r, lo + chunk) - lo};
}

SyntheticWeights::SyntheticWeights(const layout::Layout &layout, const planner::TrainerMesh &mesh,
                                   int rank, const std::vector<uint32_t> &full_sources,
                                   uint64_t seed)
    : layout_(layout), seed_(seed) {
    const size_t n = layout.sources().size();
    shards_.resize(n);
    fulls_.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
        const layout::SourceTensor &s = layout.sources()[i];
        const layout::Extent3 e = layout::sourceExtent(s);
        const int64_t elem = static_cast<int64_t>(dtypeSize(s.dtype));
        Held &h = shards_[i];
        h.box = trainerShardBox(layout, i, mesh, rank);
        const int64_t bytes = h.box.groups * h.box.rows * e.c * elem;
        h.data = std::make_unique<std::byte[]>(static_cast<size_t>(std::max<int64_t>(bytes, 1)));
        bytes_ += bytes;
    }
    for (uint32_t i : full_sources) {
        check(i < n, Errc::kInvalidArgument, "gathered source index {} out of range", i);
        const layout::SourceTensor &s = layout.sources()[i];
        const layout::Extent3 e = layout::sourceExtent(s);
        const int64_t bytes = e.numel() * static_cast<int64_t>(dtypeSize(s.dtype));
        fulls_[i].box = {0, e.g, 0, e.r};
        fulls_[i].data = std::make_unique<std::byte[]>(static_cast<size_t>(bytes));
        fulls_[i].full = true;
        bytes_ += bytes;
    }
}

void SyntheticWeights::generate(uint64_t step) {
    for (uint32_t i = 0; i < shards_.size(); ++i) {
        for (Held *h : {&shards_[i], &fulls_[i]}) {
            if (!h->data || h->box.rows == 0 || h->box.groups == 0) continue;
            syntheticFill(layout_, i, seed_, step, h->box.g0, h->box.groups, h->box.r0, h->box.rows,
                          h->data.get());
        }
    }
}

namespace {
SourceShard view(const layout::Layout &layout, uint32_t index, const ShardBox &box,
                 const std::byte *data) {
    const layout::SourceTensor &s = layout.sources()[index];
    const int64_t cols = layout::sourceExtent(s).c;
    return {data, s.dtype, box.g0, box.groups, box.r0, box.rows, cols, cols};
}
}  // namespace

SourceShard SyntheticWeights::shard(uint32_t index) const {
    check(index < shards_.size(), Errc::kInvalidArgument, "source index {} out of range", index);
    return view(layout_, index, shards_[index].box, shards_[index].data.get());
}

SourceShard SyntheticWeights::full(uint32_t index) const {
    check(index < fulls_.size() && fulls_[index].full, Errc::kNotFound,
          "source '{}' is not gathered on this rank",
          index < fulls_.size() ? layout_.sources()[index].name : std::string("?"));
    return view(layout_, index, fulls_[index].box, fulls_[index].data.get());
}

}  // namespace weightsync::convert
