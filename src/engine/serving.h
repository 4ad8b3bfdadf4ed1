#pragma once
// What plugs into an inference rank from outside the engine: whoever reads its weights between
// updates (the inference engine's forward passes), and the check of its weights after each
// version when the job verifies (JobSpec::verify). The test harness provides both (sim/: a
// stand-in reader and the check against the synthetic weights the trainers push).

#include "engine/hooks.h"
#include "engine/job.h"
#include "planner/topology.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace weightsync::engine {

/// The readers of a rank's weights. The agent parks them before any byte of a version is
/// written into live (with flip: only around the flip) and restarts them once the rank serves a
/// version again.
class WeightReaders {
  public:
    virtual ~WeightReaders() = default;
    /// Returns once no read is in flight.
    virtual void pause() = 0;
    virtual void resume() = 0;
    /// The longest time between two consecutive steps since the last call (the pause a
    /// generation loop saw), and resets it; negative when the readers do not measure it.
    virtual double takeLongestGapSeconds() { return -1; }
    /// Whether the readers can follow the live tensors to a new address (rebind()). The agent
    /// flips by a swap of its arenas only if they can (or there are none), else by a copy into
    /// the same addresses: an engine that captured its pointers (CUDA graphs) says no.
    [[nodiscard]] virtual bool canRebind() const { return false; }
    /// Called while parked, when canRebind(): from now on the live tensors are `live`.
    virtual void rebind(const LocalWeights & /*live*/) {}
};

/// Starts readers of the rank's live tensors once init() is done; may return null (no readers).
using ReadersFactory = std::function<std::unique_ptr<WeightReaders>(const LocalWeights &live)>;

/// An inference rank as a check sees it.
struct RankWeights {
    const JobSpec &spec;
    const planner::PeerSpec &peer;
    const LocalWeights &live;  // the live tensors now (device pointers when live.on_device);
                               // after a swap flip, the other arena's
    const std::vector<std::unique_ptr<UpdateHook>> &hooks;  // built-in hooks, run on `live`
};

/// Compares a rank's weights with what the trainers pushed.
class WeightCheck {
  public:
    virtual ~WeightCheck() = default;
    /// Mismatched bytes of the rank's live tensors, and of what its hooks derived from them,
    /// against version `version`; `checked` receives the bytes compared.
    virtual int64_t mismatches(uint64_t version, const RankWeights &rank, int64_t &checked) = 0;
};

}  // namespace weightsync::engine
