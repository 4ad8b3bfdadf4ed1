#pragma once
// One allocation that holds a rank's slots (trainer) or destination tensors (inference). A
// transport registers it exactly once and keeps writing into it for the job's lifetime, so it is
// never re-created, moved or copied while registered (a registered copy that is freed or
// detached from the live tensors would receive writes nobody reads).

#include "common/memory_kind.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weightsync::platform {

class Arena {
  public:
    virtual ~Arena() = default;
    [[nodiscard]] virtual std::byte *data() const = 0;
    [[nodiscard]] virtual size_t size() const = 0;
    [[nodiscard]] virtual MemoryKind kind() const = 0;
    [[nodiscard]] virtual int device() const = 0;
};

/// Page-aligned host memory, pre-faulted so first-touch page faults stay out of every timing.
std::unique_ptr<Arena> makeHostArena(size_t bytes);

/// A non-owning view of memory someone else owns (e.g. a transport's allocateMemory region).
std::unique_ptr<Arena> viewArena(std::byte *data, size_t bytes, MemoryKind kind, int device);

}  // namespace weightsync::platform
