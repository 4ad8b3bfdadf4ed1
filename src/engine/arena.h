#pragma once
// One allocation that holds a rank's slots (trainer) or destination tensors (inference), so that
// it is registered with the transport exactly once and never re-created (bug B4).

#include "transport/transport.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weightsync::engine {

class Arena {
  public:
    virtual ~Arena() = default;
    [[nodiscard]] virtual std::byte *data() const = 0;
    [[nodiscard]] virtual size_t size() const = 0;
    [[nodiscard]] virtual transport::MemoryKind kind() const = 0;
    [[nodiscard]] virtual int device() const = 0;
};

/// Page-aligned host memory, pre-faulted so first-touch page faults stay out of every timing.
std::unique_ptr<Arena> makeHostArena(size_t bytes);

/// A non-owning view of memory someone else owns (e.g. a transport's allocateMemory region).
std::unique_ptr<Arena> viewArena(std::byte *data, size_t bytes, transport::MemoryKind kind,
                                 int device);

}  // namespace weightsync::engine
