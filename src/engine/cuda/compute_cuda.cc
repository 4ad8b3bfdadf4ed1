// CUDA implementations of TrainerCompute and ReceiverMemory: cudaMalloc arenas (never VMM),
// synthetic weights generated on the device, and conversion through the CUDA kernels on one
// stream with one event per stage.

#include "common/error.h"
#include "common/log.h"
#include "convert/cuda/cuda_slot_converter.h"
#include "convert/cuda/cuda_synthetic_weights.h"
#include "engine/checksum.h"
#include "engine/compute.h"
#include "kernels/checksum/checksum.cuh"
#include "kernels/checksum/checksum.h"
#include "platform/cuda/cuda_arena.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <deque>

namespace weightsync::engine {

namespace {

class CudaTrainerCompute : public TrainerCompute {
  public:
    CudaTrainerCompute(const JobSpec &spec, const layout::Layout &layout, int rank,
                       const planner::RankPlan &plan,
                       std::shared_ptr<const convert::SourceProvider> external, int gpu)
        : gpu_(gpu),
          guard_(gpu),
          layout_(layout),
          plan_(plan),
          external_(std::move(external)),
          arena_(platform::makeCudaArena(static_cast<size_t>(plan.arena_bytes), gpu)),
          stream_(gpu),
          converter_(layout, gpu) {
        if (!external_) {
            synthetic_ = std::make_unique<convert::CudaSyntheticWeights>(
                layout, spec.mesh, rank, plan.full_sources, spec.seed, gpu);
        }
        if (spec.checksum) prepareChecksums();
    }
    Arena &arena() override { return *arena_; }
    [[nodiscard]] bool ownWeights() const { return synthetic_ != nullptr; }
    void generate(uint64_t version) override {
        if (!synthetic_) return;
        synthetic_->generate(version, stream_.get());
        stream_.synchronize();
    }
    uint64_t convert(std::span<const planner::ConvOp> ops) override {
        const convert::SourceProvider &sources =
            external_ ? *external_ : static_cast<const convert::SourceProvider &>(*synthetic_);
        converter_.enqueue(ops, sources, arena_->data(), plan_.arena_bytes, stream_.get());
        events_.emplace_back(++issued_, platform::Event(gpu_));
        events_.back().second.record(stream_.get());
        return issued_;
    }
    void waitFence(uint64_t fence) override {
        while (!events_.empty() && events_.front().first <= fence) {
            events_.front().second.synchronize();
            events_.pop_front();
        }
        if (events_.empty()) {
            const uint32_t bad = converter_.takeNonfiniteBlocks(stream_.get());
            check(bad == 0, Errc::kInvalidArgument,
                  "{} FP8 blocks of this push held NaN or Inf trainer values", bad);
        }
    }

    void checksumWrites(size_t first, size_t count) override {
        check(first + count <= plan_.writes.size() && !tile_begin_.empty(), Errc::kInternal,
              "checksum of writes [{}, {}) of {}", first, first + count, plan_.writes.size());
        // Behind the stage's conversion on the same stream: it runs while earlier writes fly.
        const uint32_t begin = tile_begin_[first];
        const uint32_t end = tile_begin_[first + count];
        platform::cudaCheck(kernels::checksumSums(tiles_.as<kernels::ChecksumTile>() + begin,
                                                  end - begin, sums_.as<uint64_t>(), stream_.get()),
                            "checksum of the trainer's writes");
    }
    std::vector<uint64_t> takeChecksums() override {
        std::vector<uint64_t> sums(plan_.writes.size());
        if (sums.empty()) return sums;
        const size_t bytes = sums.size() * sizeof(uint64_t);
        platform::cudaCheck(cudaMemcpyAsync(sums.data(), sums_.data(), bytes,
                                            cudaMemcpyDeviceToHost, stream_.get()),
                            "reading the checksums");
        platform::cudaCheck(cudaMemsetAsync(sums_.data(), 0, bytes, stream_.get()),
                            "zeroing the checksums");
        stream_.synchronize();
        // A repeated range's sum is its first write's (whose tiles summed the bytes once).
        const std::vector<uint64_t> raw = sums;
        for (size_t i = 0; i < sums.size(); ++i) {
            sums[i] = kernels::checksumFinal(raw[same_source_[i]],
                                             static_cast<uint64_t>(plan_.writes[i].bytes));
        }
        return sums;
    }

  private:
    /// The tiles of every write's source range, built and uploaded once (the plan is fixed). A
    /// write whose source bytes an earlier write sends too has no tiles: it takes that one's sum.
    void prepareChecksums() {
        same_source_ = firstWithSameSource(plan_.writes);
        std::vector<kernels::ChecksumTile> tiles;
        for (size_t i = 0; i < plan_.writes.size(); ++i) {
            const planner::Write &w = plan_.writes[i];
            tile_begin_.push_back(static_cast<uint32_t>(tiles.size()));
            if (same_source_[i] != i) continue;
            const kernels::ChecksumRange r{arena_->data() + w.src_offset,
                                           static_cast<uint64_t>(w.bytes)};
            kernels::checksumTiles({&r, 1}, static_cast<uint32_t>(tile_begin_.size() - 1), tiles);
        }
        tile_begin_.push_back(static_cast<uint32_t>(tiles.size()));
        tiles_ = platform::DeviceBuffer(tiles.size() * sizeof(kernels::ChecksumTile), gpu_);
        sums_ = platform::DeviceBuffer(plan_.writes.size() * sizeof(uint64_t), gpu_);
        if (!tiles.empty()) {
            platform::cudaCheck(
                cudaMemcpy(tiles_.data(), tiles.data(), tiles_.size(), cudaMemcpyHostToDevice),
                "uploading the checksum tiles");
        }
        if (sums_.size() > 0) sums_.fill(0);
    }

    int gpu_;
    platform::DeviceGuard guard_;
    const layout::Layout &layout_;
    const planner::RankPlan &plan_;
    std::shared_ptr<const convert::SourceProvider> external_;
    std::unique_ptr<Arena> arena_;
    platform::Stream stream_;
    convert::CudaSlotConverter converter_;
    std::unique_ptr<convert::CudaSyntheticWeights> synthetic_;
    std::deque<std::pair<uint64_t, platform::Event>> events_;
    uint64_t issued_ = 0;
    platform::DeviceBuffer tiles_;       // every write's checksum tiles, in write order
    platform::DeviceBuffer sums_;        // one sum per write, zeroed after every version
    std::vector<uint32_t> tile_begin_;   // write i's tiles: [tile_begin_[i], tile_begin_[i + 1])
    std::vector<uint32_t> same_source_;  // firstWithSameSource(plan_.writes)
};

class CudaReceiverMemory : public ReceiverMemory {
  public:
    CudaReceiverMemory(const JobSpec &spec, int gpu, size_t bytes)
        : gpu_(gpu), guard_(gpu), stream_(gpu) {
        arenas_[0] = platform::makeCudaArena(bytes, gpu);
        if (spec.staging) arenas_[1] = platform::makeCudaArena(bytes, gpu);
    }
    [[nodiscard]] size_t arenas() const override { return arenas_[1] ? 2 : 1; }
    Arena &arena(size_t index) override {
        check(index < arenas(), Errc::kInternal, "arena {} of {}", index, arenas());
        return *arenas_[index];
    }
    void commit() override { swapLiveAndStaging("staging commit"); }
    void rollback() override { swapLiveAndStaging("staging rollback"); }
    void flip() override {
        check(arenas() > 1, Errc::kInternal, "flip without a staging copy");
        platform::cudaCheck(cudaMemcpyAsync(live().data(), target().data(), live().size(),
                                            cudaMemcpyDeviceToDevice, stream_.get()),
                            "flip: staging -> live");
        stream_.synchronize();
    }
    void readLive(size_t offset, size_t bytes, std::byte *out) override {
        check(offset + bytes <= live().size(), Errc::kInternal, "read past the live arena");
        platform::cudaCheck(cudaMemcpy(out, live().data() + offset, bytes, cudaMemcpyDeviceToHost),
                            "reading the live arena");
    }

  private:
    /// live <-> staging through a device buffer of kSwapChunk bytes (three copies per chunk).
    void swapLiveAndStaging(const char *what) {
        if (arenas() < 2) return;
        constexpr size_t kSwapChunk = size_t{256} << 20;
        const size_t total = live().size();
        if (!swap_buffer_)
            swap_buffer_ = platform::makeCudaArena(std::min(kSwapChunk, total), gpu_);
        std::byte *tmp = swap_buffer_->data();
        for (size_t at = 0; at < total; at += kSwapChunk) {
            const size_t n = std::min(kSwapChunk, total - at);
            std::byte *live_bytes = live().data() + at;
            std::byte *staged = target().data() + at;
            platform::cudaCheck(
                cudaMemcpyAsync(tmp, live_bytes, n, cudaMemcpyDeviceToDevice, stream_.get()), what);
            platform::cudaCheck(
                cudaMemcpyAsync(live_bytes, staged, n, cudaMemcpyDeviceToDevice, stream_.get()),
                what);
            platform::cudaCheck(
                cudaMemcpyAsync(staged, tmp, n, cudaMemcpyDeviceToDevice, stream_.get()), what);
        }
        stream_.synchronize();
    }

    int gpu_;
    platform::DeviceGuard guard_;
    std::unique_ptr<Arena> swap_buffer_;
    std::array<std::unique_ptr<Arena>, 2> arenas_;  // [0] live at the start, [1] staging
    platform::Stream stream_;
};

}  // namespace

std::unique_ptr<TrainerCompute> makeCudaTrainerCompute(
    const JobSpec &spec, const layout::Layout &layout, int rank, const planner::RankPlan &plan,
    std::shared_ptr<const convert::SourceProvider> external, int gpu) {
    check(gpu >= 0 && gpu < platform::deviceCount(), Errc::kUnsupported,
          "trainer rank {} needs GPU {}, this machine has {}", rank, gpu, platform::deviceCount());
    const auto start = std::chrono::steady_clock::now();
    auto compute =
        std::make_unique<CudaTrainerCompute>(spec, layout, rank, plan, std::move(external), gpu);
    logger("trainer")->info(
        "rank {}: {} weights, {}-byte slot arena on GPU {} ready in {:.3f} s", rank,
        compute->ownWeights() ? "synthetic" : "the caller's", plan.arena_bytes, gpu,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return compute;
}

std::unique_ptr<ReceiverMemory> makeCudaReceiverMemory(const JobSpec &spec, int gpu, size_t bytes) {
    check(gpu >= 0 && gpu < platform::deviceCount(), Errc::kUnsupported,
          "inference rank needs GPU {}, this machine has {}", gpu, platform::deviceCount());
    return std::make_unique<CudaReceiverMemory>(spec, gpu, bytes);
}

}  // namespace weightsync::engine
