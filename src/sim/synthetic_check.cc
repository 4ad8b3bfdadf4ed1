#include "sim/synthetic_check.h"

#include "common/error.h"
#include "convert/reference.h"
#include "convert/synthetic.h"

#if WEIGHTSYNC_HAVE_CUDA
#include "sim/cuda/device_check.h"
#endif

#include <algorithm>
#include <string>

namespace weightsync::sim {

#if WEIGHTSYNC_HAVE_CUDA
class SyntheticCheck::Device : public DeviceCheck {
    using DeviceCheck::DeviceCheck;
};
#else
class SyntheticCheck::Device {};
#endif

namespace {

/// Mismatched derived tensors (counted one per kv_b_proj whose W_UV or W_UK_T differs): what the
/// rank's MLA hook holds against the same derivation from the reference bytes of `version`.
int64_t derivedMismatches(uint64_t version, const engine::RankWeights &rank) {
    const layout::Layout &layout = *rank.live.layout;
    const convert::SyntheticGenerator gen(layout, rank.spec.seed, version);
    int64_t mismatched = 0;
    for (const auto &hook : rank.hooks) {
        auto *mla = dynamic_cast<engine::MlaAbsorbHook *>(hook.get());
        if (mla == nullptr) continue;
        for (const engine::MlaAbsorbHook::Derived &d : mla->derived()) {
            const std::string name = d.layer + "self_attn.kv_b_proj.weight";
            const auto it =
                std::find_if(layout.conversions().begin(), layout.conversions().end(),
                             [&](const layout::Conversion &c) { return c.dest == name; });
            check(it != layout.conversions().end(), Errc::kInternal,
                  "the MLA hook derived tensors of '{}', which the layout does not convert", name);
            std::vector<std::byte> values;
            std::vector<std::byte> scales;
            convert::referenceConvert(layout, *it, rank.peer, gen, values, scales);
            engine::MlaAbsorbHook::Derived want;
            const planner::LocalTensor &t = rank.live.info(name);
            mla->derive(values.data(), scales.data(), t.shape[0], t.shape[1], want);
            mismatched += (want.w_uv != d.w_uv || want.w_uk_t != d.w_uk_t) ? 1 : 0;
        }
    }
    return mismatched;
}

}  // namespace

SyntheticCheck::SyntheticCheck() = default;
SyntheticCheck::~SyntheticCheck() = default;

int64_t SyntheticCheck::mismatches(uint64_t version, const engine::RankWeights &rank,
                                   int64_t &checked) {
    const layout::Layout &layout = *rank.live.layout;
    int64_t mismatched = 0;
    if (rank.live.on_device) {
#if WEIGHTSYNC_HAVE_CUDA
        if (!device_ || !device_->serves(layout, rank.spec.seed, rank.live.device)) {
            device_ = std::make_unique<Device>(layout, rank.spec.seed, rank.live.device);
        }
        mismatched = device_->mismatches(rank.peer, version, rank.live.data, checked);
#else
        fail(Errc::kUnsupported, "inference {}: checking device memory needs a build with CUDA",
             rank.peer.name);
#endif
    } else {
        mismatched =
            compareHostTensors(layout, rank.peer, rank.spec.seed, version, rank.live.data, checked);
    }
    return mismatched + derivedMismatches(version, rank);
}

int64_t compareHostTensors(const layout::Layout &layout, const planner::PeerSpec &peer,
                           uint64_t seed, uint64_t version, const std::vector<std::byte *> &tensors,
                           int64_t &checked) {
    const convert::SyntheticGenerator gen(layout, seed, version);
    int64_t mismatched = 0;
    checked = 0;
    for (const layout::Conversion &conv : layout.conversions()) {
        std::vector<std::byte> values;
        std::vector<std::byte> scales;
        convert::referenceConvert(layout, conv, peer, gen, values, scales);
        const auto compare = [&](const std::string &name, const std::vector<std::byte> &want) {
            const std::byte *got = tensors[layout.destIndex(name)];
            for (size_t b = 0; b < want.size(); ++b) mismatched += got[b] != want[b];
            checked += static_cast<int64_t>(want.size());
        };
        compare(conv.dest, values);
        if (!conv.scale.empty()) compare(conv.scale, scales);
    }
    return mismatched;
}

}  // namespace weightsync::sim
