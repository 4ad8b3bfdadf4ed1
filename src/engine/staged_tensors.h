#pragma once
// The caller's destination tensors (e.g. a torch module's parameters) with a staging copy the
// agent owns, for JobSpec::staging: the writers target the staging arena, and a version becomes
// live by copying it over the caller's tensors (flip) or by trading contents with them (commit,
// undone by rollback). The caller's tensors stay where they are; the cost is one more copy of the
// rank's weights, in the same memory (host or the tensors' GPU).

#include "platform/arena.h"

#include <cstddef>
#include <memory>
#include <vector>

namespace weightsync::engine {

/// One caller tensor and the place of its staged copy.
struct StagedTensor {
    std::byte *live = nullptr;  // the caller's tensor
    size_t offset = 0;          // of its copy in the staging arena
    size_t bytes = 0;
};

class StagedTensors {
  public:
    virtual ~StagedTensors() = default;
    /// The arena the writers target (registered with every transport once).
    [[nodiscard]] virtual platform::Arena &staging() = 0;
    /// Copies staging over every caller tensor (staging keeps its bytes: no rollback after it).
    virtual void flip() = 0;
    /// The caller's tensors and staging trade contents; rollback() trades them back.
    virtual void commit() = 0;
    virtual void rollback() = 0;
};

/// A staging arena of `bytes` for `tensors` (each [offset, offset + bytes) inside it), in host
/// memory (`device` -1) or on CUDA device `device` (Errc::kUnsupported in a build without CUDA).
std::unique_ptr<StagedTensors> makeStagedTensors(std::vector<StagedTensor> tensors, size_t bytes,
                                                 int device);

}  // namespace weightsync::engine
