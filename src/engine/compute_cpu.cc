// CPU implementations of TrainerCompute and ReceiverMemory (reference kernels, host memory), and
// the factories that pick CPU or CUDA.

#include "common/error.h"
#include "convert/slot_converter.h"
#include "convert/synthetic.h"
#include "engine/checksum.h"
#include "engine/compute.h"
#include "kernels/checksum/checksum_ref.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <future>
#include <utility>
#include <vector>

namespace weightsync::engine {

#if WEIGHTSYNC_HAVE_CUDA
// engine/cuda/compute_cuda.cc
std::unique_ptr<TrainerCompute> makeCudaTrainerCompute(
    const JobSpec &spec, const layout::Layout &layout, int rank, const planner::RankPlan &plan,
    std::shared_ptr<const convert::SourceProvider> external, int gpu);
std::unique_ptr<ReceiverMemory> makeCudaReceiverMemory(const JobSpec &spec, int gpu, size_t bytes);
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
          arena_(platform::makeHostArena(static_cast<size_t>(plan.arena_bytes))),
          same_source_(firstWithSameSource(plan.writes)) {
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
    void checksumWrites(size_t first, size_t count) override {
        check(first + count <= plan_.writes.size(), Errc::kInternal,
              "checksum of writes [{}, {}) of {}", first, first + count, plan_.writes.size());
        if (count == 0) return;
        checksums_.resize(plan_.writes.size());
        // On a thread of its own, beside the next stage's conversion (which fills other bytes).
        pending_.push_back(std::async(std::launch::async, [this, first, count] {
            for (size_t i = first; i < first + count; ++i) {
                if (same_source_[i] != i) continue;  // sent to another engine too: done once
                const planner::Write &w = plan_.writes[i];
                checksums_[i] = kernels::checksumRef(arena_->data() + w.src_offset,
                                                     static_cast<uint64_t>(w.bytes));
            }
        }));
    }
    std::vector<uint64_t> takeChecksums() override {
        for (auto &f : pending_) f.get();
        pending_.clear();
        checksums_.resize(plan_.writes.size());
        for (size_t i = 0; i < checksums_.size(); ++i) checksums_[i] = checksums_[same_source_[i]];
        return std::exchange(checksums_, {});
    }

  private:
    const layout::Layout &layout_;
    const planner::RankPlan &plan_;
    std::shared_ptr<const convert::SourceProvider> external_;
    std::unique_ptr<convert::SyntheticWeights> synthetic_;
    std::unique_ptr<Arena> arena_;
    uint64_t fence_ = 0;
    std::vector<uint32_t> same_source_;       // firstWithSameSource(plan_.writes)
    std::vector<uint64_t> checksums_;         // of the plan's writes, this version
    std::vector<std::future<void>> pending_;  // checksum tasks not yet waited for
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
    CpuReceiverMemory(const JobSpec &spec, size_t bytes, std::unique_ptr<Arena> target,
                      std::unique_ptr<Arena> live) {
        const auto own = [bytes](std::unique_ptr<Arena> offered) {
            return offered ? std::move(offered) : platform::makeHostArena(bytes);
        };
        if (spec.staging) {
            arenas_[0] = own(std::move(live));
            arenas_[1] = own(std::move(target));
        } else {
            arenas_[0] = own(std::move(target));
        }
    }
    [[nodiscard]] size_t arenas() const override { return arenas_[1] ? 2 : 1; }
    Arena &arena(size_t index) override {
        check(index < arenas(), Errc::kInternal, "arena {} of {}", index, arenas());
        return *arenas_[index];
    }
    void commit() override {
        if (arenas() > 1) swapArenas(live(), target());
    }
    void rollback() override {
        if (arenas() > 1) swapArenas(live(), target());
    }
    void readLive(size_t offset, size_t bytes, std::byte *out) override {
        check(offset + bytes <= live().size(), Errc::kInternal, "read past the live arena");
        std::memcpy(out, live().data() + offset, bytes);
    }
    void flip() override {
        check(arenas() > 1, Errc::kInternal, "flip without a staging copy");
        std::memcpy(live().data(), target().data(), live().size());
    }

  private:
    std::array<std::unique_ptr<Arena>, 2> arenas_;  // [0] live at the start, [1] staging
};

#if !WEIGHTSYNC_HAVE_CUDA
[[noreturn]] void noCuda() {
    fail(Errc::kUnsupported,
         "this weightsync was built without CUDA; device 'cuda' needs a build with nvcc");
}
#endif

}  // namespace

int trainerGpu(const JobSpec &spec, int rank) {
    if (spec.device != Device::kCuda) return -1;
    return spec.trainer_gpus[static_cast<size_t>(rank) % spec.trainer_gpus.size()];
}

int inferenceGpu(const JobSpec &spec, int peer) {
    if (spec.device != Device::kCuda) return -1;
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

void ReceiverMemory::swap() {
    check(arenas() > 1, Errc::kInternal, "a swap flip without a staging copy");
    live_ = 1 - live_;
}

std::unique_ptr<ReceiverMemory> makeReceiverMemory(const JobSpec &spec, int gpu, size_t bytes,
                                                   std::unique_ptr<Arena> target,
                                                   std::unique_ptr<Arena> live) {
    if (spec.device == Device::kCuda) {
#if WEIGHTSYNC_HAVE_CUDA
        return makeCudaReceiverMemory(spec, gpu, bytes);
#else
        (void)gpu;
        noCuda();
#endif
    }
    return std::make_unique<CpuReceiverMemory>(spec, bytes, std::move(target), std::move(live));
}

}  // namespace weightsync::engine
