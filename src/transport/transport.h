#pragma once
// The data-plane interface. One folder per backend (ucx/, inproc/, cuda_ipc/, fault/), all behind
// TransportBackend. The life cycle is: register local memory once, or let the backend allocate
// it (allocateMemory: receivers should prefer it), as a LocalRegion (RAII) ->
// describe it (RemoteDescriptor, a plain serializable value) -> a peer imports the descriptor
// (RemoteRegion, RAII) -> post one-sided writes local range -> remote range -> flush.
// Two-sided backends (nccl/: Capabilities::two_sided) add two steps: each writer and receiver
// form a pair once (makePairToken on the writer, handed over by the caller, pair() on both), and
// the receiver posts a receive for each write addressed to it, in the writer's order.
//
// Threading: a backend object is used by one thread at a time, except that a receiver may run
// the backend's own progress thread (startProgressThread) while its owner thread is idle.

#include "common/error.h"
#include "common/memory_kind.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weightsync::transport {

using weightsync::MemoryKind;  // transport::MemoryKind, as every backend spells it

struct Capabilities {
    std::string name;          // "ucx", "inproc", "cuda_ipc"
    bool host_memory = false;  // can register host memory
    bool cuda_memory = false;  // can register CUDA device memory
    // Receivers must run a progress thread for writes into registered memory to land. (UCX:
    // regions from allocateMemory take writes from same-host peers without it; keep it running
    // for the others.)
    bool needs_target_progress = false;
    // Writes land only where the target posted a matching receive (postReceive), and the two
    // ends form a pair first (pair()): NCCL.
    bool two_sided = false;
};

/// A serializable description of a registered region, published by its owner.
struct RemoteDescriptor {
    std::string backend;   // must match the importing backend's name
    uint64_t address = 0;  // base address in the owner's address space
    uint64_t length = 0;   // bytes
    MemoryKind kind = MemoryKind::kHost;
    int device = -1;          // CUDA device ordinal of the owner, -1 for host
    uint64_t generation = 0;  // owner's incarnation; a restarted owner publishes a new one
    std::string key;          // backend-specific key blob (e.g. packed UCX rkey), raw bytes

    [[nodiscard]] nlohmann::json toJson() const;
    static RemoteDescriptor fromJson(const nlohmann::json &json);
};

/// A registered local memory range. Deregisters on destruction; never copied.
class LocalRegion {
  public:
    virtual ~LocalRegion() = default;
    LocalRegion(const LocalRegion &) = delete;
    LocalRegion &operator=(const LocalRegion &) = delete;

    [[nodiscard]] virtual void *data() const = 0;
    [[nodiscard]] virtual size_t size() const = 0;
    [[nodiscard]] virtual RemoteDescriptor describe() const = 0;

  protected:
    LocalRegion() = default;
};

/// A peer's region, imported from its descriptor. Releases the imported key on destruction.
class RemoteRegion {
  public:
    virtual ~RemoteRegion() = default;
    RemoteRegion(const RemoteRegion &) = delete;
    RemoteRegion &operator=(const RemoteRegion &) = delete;

    [[nodiscard]] virtual size_t size() const = 0;
    [[nodiscard]] virtual const std::string &peer() const = 0;

  protected:
    RemoteRegion() = default;
};

struct FlushStats {
    uint64_t writes = 0;  // writes completed since the previous flush
    uint64_t bytes = 0;   // bytes those writes moved
};

class TransportBackend {
  public:
    virtual ~TransportBackend() = default;

    [[nodiscard]] virtual const Capabilities &capabilities() const = 0;

    /// Opaque bytes another process passes to connect() to reach this one.
    [[nodiscard]] virtual std::string address() const = 0;

    /// Registers [ptr, ptr+length). Throws Errc::kUnsupported for memory the backend cannot serve.
    virtual std::unique_ptr<LocalRegion> registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                        int device) = 0;

    /// Optional: allocates `length` bytes that the backend can serve better than memory the caller
    /// allocated, and registers them. The result is a LocalRegion like registerMemory's: data()
    /// is the memory (page-aligned, zero-filled and pre-faulted, so first-touch costs never land
    /// in a write), size() is `length`, and destroying the region frees the memory. Returns
    /// nullptr when the backend has nothing better than the caller's own memory; the caller then
    /// allocates and calls registerMemory. The default returns nullptr.
    ///
    /// UCX: host memory in a shared-memory segment (sysv or posix) that peers on the same host
    /// map directly, so their writes are plain stores that land without this process progressing
    /// (truly one-sided). nullptr for CUDA memory and when no shared-memory transport is loaded.
    virtual std::unique_ptr<LocalRegion> allocateMemory(size_t length, MemoryKind kind,
                                                        int device) {
        (void)length, (void)kind, (void)device;
        return nullptr;
    }

    /// Connects to a peer (idempotent per name). Errors later reported for it carry peer_name.
    virtual void connect(const std::string &peer_name, const std::string &peer_address) = 0;

    /// Imports a region the named (connected) peer described. Validates the backend name.
    virtual std::unique_ptr<RemoteRegion> importRegion(const std::string &peer_name,
                                                       const RemoteDescriptor &descriptor) = 0;

    /// Posts a one-sided write of `length` bytes. Ranges are checked against both regions.
    /// May block while the backend's in-flight limits are reached.
    virtual void postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                           size_t target_offset, size_t length) = 0;

    /// Waits until every posted write is complete at the target. Throws Errc::kPeerLost or
    /// kTransport naming the peer on failure, Errc::kTimeout past the deadline.
    virtual FlushStats flush(std::chrono::milliseconds timeout) = 0;

    /// Early completion, without blocking: a mark after every write posted so far, or nullopt
    /// when this backend cannot tell before flush() (the default). markState(mark) then says
    /// whether every write posted before the mark is complete at its target (kReached, with the
    /// same guarantee as a flush() that returned), still in flight (kPending), or can no longer
    /// be known complete before flush() (kFailed: a write failed, or a flush failed; flush()
    /// reports it). It never throws. A mark is reached for good, and a flush() that returned
    /// reaches every earlier mark. Writers use it to tell a receiver which writes landed while
    /// later ones still fly (per-stage checksums).
    virtual std::optional<uint64_t> mark() { return std::nullopt; }
    enum class MarkState { kPending, kReached, kFailed };
    virtual MarkState markState(uint64_t mark) {
        (void)mark;
        return MarkState::kFailed;
    }

    /// Two-sided backends: a fresh token (printable text) the writer hands to one receiver out of
    /// band (the job's store) and both then pass to pair(). The default throws Errc::kUnsupported.
    virtual std::string makePairToken() {
        fail(Errc::kUnsupported, "transport {} is one-sided: it forms no pairs",
             capabilities().name);
    }

    /// Two-sided backends: forms the pair with `peer` from the writer's token, the writer
    /// (`writer`) or the receiver side; both ends call it, and it returns once both joined.
    /// Several pairs of one process are formed one after the other, every process in one order
    /// (writer rank, then receiver) so that none waits on another in a cycle. Throws
    /// Errc::kTimeout past `timeout`, kUnsupported for a pair the backend cannot form.
    virtual void pair(const std::string &peer, const std::string &token, bool writer,
                      std::chrono::milliseconds timeout) {
        (void)peer, (void)token, (void)writer, (void)timeout;
        fail(Errc::kUnsupported, "transport {} is one-sided: it forms no pairs",
             capabilities().name);
    }

    /// Two-sided backends: receives `length` bytes from the paired `peer` into [offset,
    /// +length) of `target`. Receives from one peer match its writes to this process in the order
    /// both were posted; flush() waits for them as for writes.
    virtual void postReceive(const LocalRegion &target, size_t offset, const std::string &peer,
                             size_t length) {
        (void)target, (void)offset, (void)peer, (void)length;
        fail(Errc::kUnsupported, "transport {} is one-sided: it posts no receives",
             capabilities().name);
    }

    /// Hands the writes and receives posted since the last submit to the network as one batch
    /// (NCCL: one group). One-sided backends start every write when it is posted: no-op. flush()
    /// submits what is left.
    virtual void submit() {}

    /// Receivers: start/stop a thread that progresses incoming operations (no-op if not needed).
    virtual void startProgressThread() = 0;
    virtual void stopProgressThread() = 0;
};

}  // namespace weightsync::transport
