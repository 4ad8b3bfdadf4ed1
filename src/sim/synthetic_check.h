#pragma once
// The check of an inference rank's weights that the demo and the tests run after every version:
// against the synthetic weights the trainers push (convert::SyntheticGenerator of the job's
// seed), every byte of every live tensor by the reference converter (on the CPU, or on the
// rank's GPU for device memory), and the tensors GLM-5's MLA hook derived from them against the
// same derivation from the reference bytes.

#include "engine/serving.h"
#include "layout/layout.h"
#include "planner/topology.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace weightsync::sim {

class SyntheticCheck : public engine::WeightCheck {
  public:
    SyntheticCheck();
    ~SyntheticCheck() override;
    SyntheticCheck(const SyntheticCheck &) = delete;
    SyntheticCheck &operator=(const SyntheticCheck &) = delete;

    int64_t mismatches(uint64_t version, const engine::RankWeights &rank,
                       int64_t &checked) override;

  private:
    class Device;  // the GPU reference, created on the first check of device memory
    std::unique_ptr<Device> device_;
};

/// Mismatched bytes of an inference rank's destination tensors (host pointers, layout.dests()
/// order) against version `version` of the synthetic weights of `seed`, by the CPU reference;
/// `checked` receives the bytes compared.
int64_t compareHostTensors(const layout::Layout &layout, const planner::PeerSpec &peer,
                           uint64_t seed, uint64_t version, const std::vector<std::byte *> &tensors,
                           int64_t &checked);

}  // namespace weightsync::sim
