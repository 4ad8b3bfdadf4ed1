// CPU implementations of TrainerCompute and ReceiverMemory (reference kernels, host memory), and
// the factories that pick CPU or CUDA.

#include "common/error.h"
#include "convert/reference.h"
#include "convert/slot_converter.h"
#include "convert/synthetic.h"
#include "engine/compute.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace weightsync::engine {

#if WEIGHTSYNC_HAVE_CUDA
// engine/cuda/compute_cuda.cc
std::unique_ptr<TrainerCompute> makeCudaTrainerCompute(
    const JobSpec &spec, const layout::Layout &layout, int rank, const planner::RankPlan &plan,
    std::shared_ptr<const convert::SourceProvider> external, int gpu);
std::unique_ptr<ReceiverMemory> makeCudaReceiverMemory(const JobSpec &spec,
                                                       const layout::Layout &layout, int gpu,
                                                       size_t bytes);
#endif

namespace {

class CpuTrainerCompute : public TrainerCompute {
  public:
    CpuTrainerCompute(const JobSpec &spec, const layout::Layout &layout, int rank,
                      const planner::RankPlan &plan,
                      std::shared_ptr<const convert::SourceProvider> external)
        : layout_(layout),
          plan_(plan),
          external_(std::move(external)),
          arena_(makeHostArena(static_cast<size_t>(plan.arena_bytes))) {
        if (!external_) {
            synthetic_ = std::make_unique<convert::SyntheticWeights>(layout, spec.mesh, rank,
                                                                     plan.full_sources, spec.seed);
        }
    }
    Arena &arena() override { return *arena_; }
    void generate(uint64_t version) override {
        if (synthetic_) synthetic_->generate(version);
    }
    uint64_t convert(std::span<const planner::ConvOp> ops) override {
        const convert::SourceProvider &sources =
            external_ ? *external_ : static_cast<const convert::SourceProvider &>(*synthetic_);
        convert::convertOpsCpu(layout_, ops, sources, arena_->data(), plan_.arena_bytes);
        return ++fence_;
    }
    void waitFence(uint64_t /*fence*/) override {}

  private:
    const layout::Layout &layout_;
    const planner::RankPlan &plan_;
    std::shared_ptr<const convert::SourceProvider> external_;
    std::unique_ptr<convert::SyntheticWeights> synthetic_;
    std::unique_ptr<Arena> arena_;
    uint64_t fence_ = 0;
};

/// Exchanges the contents of two equally sized host arenas through a cache-sized buffer.
void swapArenas(Arena &a, Arena &b) {
    check(a.size() == b.size(), Errc::kInternal, "swapping arenas of {} and {} bytes", a.size(),
          b.size());
    constexpr size_t kChunk = size_t{1} << 20;
    std::vector<std::byte> tmp(std::min(kChunk, a.size()));
    for (size_t at = 0; at < a.size(); at += kChunk) {
        const size_t n = std::min(kChunk, a.size() - at);
        std::memcpy(tmp.data(), a.data() + at, n);
        std::memcpy(a.data() + at, b.data() + at, n);
        std::memcpy(b.data() + at, tmp.data(), n);
    }
}

class CpuReceiverMemory : public ReceiverMemory {
  public:
    CpuReceiverMemory(const JobSpec &spec, const layout::Layout &layout, size_t bytes,
                      std::unique_ptr<Arena> target)
        : spec_(spec), layout_(layout) {
        if (spec.staging) {
            staging_ = target ? std::move(target) : makeHostArena(bytes);
            live_ = makeHostArena(bytes);
        } else {
            live_ = target ? std::move(target) : makeHostArena(bytes);
        }
    }
    Arena &live() override { return *live_; }
    Arena &target() override { return staging_ ? *staging_ : *live_; }
    void commit() override {
        if (staging_) swapArenas(*live_, *staging_);
    }
    void rollback() override {
        if (staging_) swapArenas(*live_, *staging_);
    }
    void readLive(size_t offset, size_t bytes, std::byte *out) override {
        check(offset + bytes <= live_->size(), Errc::kInternal, "read past the live arena");
        std::memcpy(out, live_->data() + offset, bytes);
    }
    int64_t verify(const planner::PeerSpec &peer, uint64_t version,
                   const std::vector<int64_t> &offsets, int64_t &checked) override {
        std::vector<std::byte *> tensors;
        for (int64_t off : offsets) tensors.push_back(live_->data() + off);
        return verifyHostTensors(layout_, peer, spec_.seed, version, tensors, checked);
    }

  private:
    const JobSpec &spec_;
    const layout::Layout &layout_;
    std::unique_ptr<Arena> live_;
    std::unique_ptr<Arena> staging_;
};

#if !WEIGHTSYNC_HAVE_CUDA
[[noreturn]] void noCuda() {
    fail(Errc::kUnsupported,
         "this weightsync was built without CUDA; device 'cuda' needs a build with nvcc");
}
#endif

}  // namespace

int64_t verifyHostTensors(const layout::Layout &layout, const planner::PeerSpec &peer,
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

int trainerGpu(const JobSpec &spec, int rank) {
    if (spec.device != "cuda") return -1;
    return spec.trainer_gpus[static_cast<size_t>(rank) % spec.trainer_gpus.size()];
}

int inferenceGpu(const JobSpec &spec, int peer) {
    if (spec.device != "cuda") return -1;
    return spec.inference_gpus[static_cast<size_t>(peer) % spec.inference_gpus.size()];
}

std::unique_ptr<TrainerCompute> makeTrainerCompute(
    const JobSpec &spec, const layout::Layout &layout, int rank, const planner::RankPlan &plan,
    std::shared_ptr<const convert::SourceProvider> external) {
    // The caller's weights decide where this rank computes: tensors in GPU memory convert on
    // that GPU into a device slot arena, host tensors on the CPU. Synthetic weights follow the
    // job's device.
    const int gpu = external ? external->device() : trainerGpu(spec, rank);
    if (gpu >= 0) {
#if WEIGHTSYNC_HAVE_CUDA
        return makeCudaTrainerCompute(spec, layout, rank, plan, std::move(external), gpu);
#else
        noCuda();
#endif
    }
    return std::make_unique<CpuTrainerCompute>(spec, layout, rank, plan, std::move(external));
}

std::unique_ptr<ReceiverMemory> makeReceiverMemory(const JobSpec &spec,
                                                   const layout::Layout &layout, int gpu,
                                                   size_t bytes, std::unique_ptr<Arena> target) {
    if (spec.device == "cuda") {
#if WEIGHTSYNC_HAVE_CUDA
        return makeCudaReceiverMemory(spec, layout, gpu, bytes);
#else
        (void)gpu;
        noCuda();
#endif
    }
    return std::make_unique<CpuReceiverMemory>(spec, layout, bytes, std::move(target));
}

}  // namespace weightsync::engine
