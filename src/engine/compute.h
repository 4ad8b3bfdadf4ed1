#pragma once
// Where a rank's weights live and how its conversion runs: on the CPU with the reference kernels,
// or on a CUDA device with the CUDA kernels (engine/cuda/, built with CUDA).
// The agents are written against these two interfaces only.

#include "convert/source.h"
#include "engine/job.h"
#include "layout/layout.h"
#include "planner/geometry.h"
#include "planner/plan.h"
#include "platform/arena.h"

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace weightsync::engine {

using platform::Arena;

/// A trainer rank's compute side: its weights, its slot arena and the conversion into it.
class TrainerCompute {
  public:
    virtual ~TrainerCompute() = default;
    [[nodiscard]] virtual Arena &arena() = 0;
    /// The synthetic optimizer step: the weights of `version`, in place (no-op for weights the
    /// caller provides). Returns once they are final.
    virtual void generate(uint64_t version) = 0;
    /// Starts converting one stage's ops into the arena (the CPU converts before returning; a
    /// GPU enqueues) and returns a fence for waitFence().
    virtual uint64_t convert(std::span<const planner::ConvOp> ops) = 0;
    /// Blocks until the stage of `fence` (and every earlier one) is in the slots. Throws if the
    /// conversion met a NaN/Inf.
    virtual void waitFence(uint64_t fence) = 0;
    /// Starts checksumming the source bytes of the plan's writes [first, first + count) (their
    /// ops were converted by earlier convert() calls), off the critical path: a GPU enqueues it
    /// behind the conversion, the CPU runs it beside the next stage's conversion.
    virtual void checksumWrites(size_t first, size_t count) = 0;
    /// Waits for every checksumWrites() since the last call and returns the checksums of all the
    /// plan's writes, in plan order (0 for writes not checksummed).
    virtual std::vector<uint64_t> takeChecksums() = 0;
};

/// An inference rank's memory: the live destination tensors and an optional staging copy that
/// receives the writes. The arenas have fixed indices (0: live at the start, 1: staging); which
/// one is live is a role that swap() trades.
class ReceiverMemory {
  public:
    virtual ~ReceiverMemory() = default;
    /// 1, or 2 with staging.
    [[nodiscard]] virtual size_t arenas() const = 0;
    /// Arena `index` (< arenas()), whatever its role.
    [[nodiscard]] virtual Arena &arena(size_t index) = 0;
    [[nodiscard]] size_t liveIndex() const { return live_; }
    /// The arena writers target: staging when staging, else the live one.
    [[nodiscard]] size_t targetIndex() const { return arenas() > 1 ? 1 - live_ : live_; }
    [[nodiscard]] Arena &live() { return arena(live_); }
    [[nodiscard]] Arena &target() { return arena(targetIndex()); }
    /// The swap flip (staging required): live and staging trade roles, no byte moves (O(1)).
    /// The staged version is live, the one before is in staging: swap() again brings it back.
    /// Whoever holds addresses of the live arena must follow (engine/serving.h).
    void swap();
    /// Makes the staged version live: staging and live trade contents (no-op without staging),
    /// so that rollback() can bring the previous version back.
    virtual void commit() = 0;
    /// Undoes commit(): live holds the previous version again (no-op without staging).
    virtual void rollback() = 0;
    /// Host copy of `bytes` at `offset` of the live arena (hooks read derived-tensor inputs).
    virtual void readLive(size_t offset, size_t bytes, std::byte *out) = 0;
    /// The copy flip (staging required), for live memory whose address must not change: copies
    /// staging over live (one device-to-device copy at memory bandwidth). Staging keeps the same
    /// bytes, so the version before is gone from both: no rollback() after it.
    virtual void flip() = 0;

  private:
    size_t live_ = 0;
};

/// `external`: the caller's weights (nullptr = synthetic weights of spec.seed). Where they live
/// (external->device()) picks the compute: CUDA on their GPU, or the CPU; synthetic weights
/// follow spec.device. Without CUDA in this build, device weights throw Errc::kUnsupported.
std::unique_ptr<TrainerCompute> makeTrainerCompute(
    const JobSpec &spec, const layout::Layout &layout, int rank, const planner::RankPlan &plan,
    std::shared_ptr<const convert::SourceProvider> external);

/// `target`: memory for the arena that receives writes (staging or live) when a transport
/// offers better memory than a plain allocation (UCX shared memory, written one-sided); null =
/// allocate it here. `live`: the same for the live arena with staging, which receives writes
/// too once swap() made it staging.
std::unique_ptr<ReceiverMemory> makeReceiverMemory(const JobSpec &spec, int gpu, size_t bytes,
                                                   std::unique_ptr<Arena> target = nullptr,
                                                   std::unique_ptr<Arena> live = nullptr);

/// The GPU of trainer rank `rank` / of inference peer index `peer` (-1 for CPU jobs).
int trainerGpu(const JobSpec &spec, int rank);
int inferenceGpu(const JobSpec &spec, int peer);

}  // namespace weightsync::engine
