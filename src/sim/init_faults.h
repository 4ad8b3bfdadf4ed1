#pragma once
// Fault injection at start-up: an inference rank that misreports itself, through a store that
// rewrites what the rank reads and publishes (the agent itself is the production one).

#include "control/store.h"

#include <memory>
#include <string>

namespace weightsync::sim {

struct InitFaults {
    std::string model;          // read the job spec as if it named this model (serve its layout)
    std::string shrink_tensor;  // publish this tensor's memory descriptor one byte short
    [[nodiscard]] bool any() const { return !model.empty() || !shrink_tensor.empty(); }
};

/// `inner` as the faulty rank sees it: the job spec (keys::spec()) reads with `faults.model` as
/// its model and without a layer count; a memory record (keys::memory(peer)) is published with
/// `faults.shrink_tensor`'s chunk one byte short. Everything else passes through. Returns
/// `inner` itself without faults.
std::shared_ptr<control::Store> misreportingStore(std::shared_ptr<control::Store> inner,
                                                  const InitFaults &faults);

}  // namespace weightsync::sim
