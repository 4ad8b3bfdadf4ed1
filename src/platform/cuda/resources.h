#pragma once
// RAII owners of CUDA runtime handles: streams, events and device allocations. Move-only; a
// moved-from object owns nothing. Destructors never throw (failures are logged).

#include <cuda_runtime_api.h>

#include <cstddef>

namespace weightsync::platform {

/// A stream on one device (non-blocking with respect to the legacy default stream by default).
class Stream {
  public:
    explicit Stream(int device, bool non_blocking = true);
    ~Stream();
    Stream(Stream &&other) noexcept;
    Stream &operator=(Stream &&other) noexcept;
    Stream(const Stream &) = delete;
    Stream &operator=(const Stream &) = delete;

    [[nodiscard]] cudaStream_t get() const { return stream_; }
    [[nodiscard]] int device() const { return device_; }
    /// Blocks until the stream's work is done; throws kTransport on a failure.
    void synchronize() const;

  private:
    void reset() noexcept;
    cudaStream_t stream_ = nullptr;
    int device_ = -1;
};

/// An event on one device; timing is off unless asked for (cheaper to record and query).
class Event {
  public:
    explicit Event(int device, bool timing = false);
    ~Event();
    Event(Event &&other) noexcept;
    Event &operator=(Event &&other) noexcept;
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;

    [[nodiscard]] cudaEvent_t get() const { return event_; }
    void record(cudaStream_t stream);
    /// True once the recorded work is done, false while it runs; throws on a failure of that work.
    [[nodiscard]] bool query() const;
    void synchronize() const;
    /// Milliseconds between two completed timing events.
    static float elapsedMs(const Event &start, const Event &end);

  private:
    void reset() noexcept;
    cudaEvent_t event_ = nullptr;
};

/// cudaMalloc sizes of at least this are rounded up to a multiple of it. A peer's copies into
/// the engine's receiver arena, of an odd size, ran 20 % slower over NVLink than into the same
/// arena rounded up (2 x H200: 309 vs 392 GB/s, the same 197 writes; see the README of
/// bench/results/gpu-h200x2-2026-11-30-linkrate). PyTorch's caching allocator rounds large
/// blocks the same way.
inline constexpr size_t kDeviceAllocationGranularity = size_t{2} << 20;

/// A cudaMalloc allocation (never managed or VMM memory, so CUDA IPC can export it).
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    /// bytes == 0 allocates nothing (data() is null). From kDeviceAllocationGranularity on, the
    /// allocation is `bytes` rounded up to a multiple of it; size() stays `bytes`.
    DeviceBuffer(size_t bytes, int device);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer &&other) noexcept;
    DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;

    [[nodiscard]] void *data() const { return data_; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] int device() const { return device_; }
    template <typename T>
    [[nodiscard]] T *as() const {
        return static_cast<T *>(data_);
    }
    /// Fills the buffer with `byte` and waits for it.
    void fill(int byte) const;

  private:
    void reset() noexcept;
    void *data_ = nullptr;
    size_t size_ = 0;
    int device_ = -1;
};

}  // namespace weightsync::platform
