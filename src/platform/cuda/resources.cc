#include "platform/cuda/resources.h"

#include "common/log.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"

#include <utility>

namespace weightsync::platform {
namespace {

void warnIfFailed(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return;
    (void)cudaGetLastError();
    logger("cuda")->warn("{}: {}", what, cudaErrorText(err));
}

}  // namespace

Stream::Stream(int device, bool non_blocking) : device_(device) {
    DeviceGuard guard(device);
    cudaCheck(cudaStreamCreateWithFlags(&stream_,
                                        non_blocking ? cudaStreamNonBlocking : cudaStreamDefault),
              "cudaStreamCreate on GPU {}", device);
}

Stream::~Stream() {
    reset();
}

Stream::Stream(Stream &&other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)), device_(other.device_) {}

Stream &Stream::operator=(Stream &&other) noexcept {
    if (this != &other) {
        reset();
        stream_ = std::exchange(other.stream_, nullptr);
        device_ = other.device_;
    }
    return *this;
}

void Stream::reset() noexcept {
    if (stream_ != nullptr) warnIfFailed(cudaStreamDestroy(stream_), "cudaStreamDestroy");
    stream_ = nullptr;
}

void Stream::synchronize() const {
    cudaCheck(cudaStreamSynchronize(stream_), "cudaStreamSynchronize on GPU {}", device_);
}

Event::Event(int device, bool timing) {
    DeviceGuard guard(device);
    cudaCheck(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming),
              "cudaEventCreate on GPU {}", device);
}

Event::~Event() {
    reset();
}

Event::Event(Event &&other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

Event &Event::operator=(Event &&other) noexcept {
    if (this != &other) {
        reset();
        event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
}

void Event::reset() noexcept {
    if (event_ != nullptr) warnIfFailed(cudaEventDestroy(event_), "cudaEventDestroy");
    event_ = nullptr;
}

void Event::record(cudaStream_t stream) {
    cudaCheck(cudaEventRecord(event_, stream), "cudaEventRecord");
}

bool Event::query() const {
    const cudaError_t err = cudaEventQuery(event_);
    if (err == cudaErrorNotReady) {
        (void)cudaGetLastError();
        return false;
    }
    cudaCheck(err, "cudaEventQuery");
    return true;
}

void Event::synchronize() const {
    cudaCheck(cudaEventSynchronize(event_), "cudaEventSynchronize");
}

float Event::elapsedMs(const Event &start, const Event &end) {
    float ms = 0;
    cudaCheck(cudaEventElapsedTime(&ms, start.event_, end.event_), "cudaEventElapsedTime");
    return ms;
}

DeviceBuffer::DeviceBuffer(size_t bytes, int device) : size_(bytes), device_(device) {
    if (bytes == 0) return;
    DeviceGuard guard(device);
    const size_t g = kDeviceAllocationGranularity;
    const size_t rounded = bytes < g ? bytes : (bytes + g - 1) / g * g;
    cudaCheck(cudaMalloc(&data_, rounded), "cudaMalloc of {} bytes on GPU {}", rounded, device);
}

DeviceBuffer::~DeviceBuffer() {
    reset();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      device_(other.device_) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
    if (this != &other) {
        reset();
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        device_ = other.device_;
    }
    return *this;
}

void DeviceBuffer::reset() noexcept {
    if (data_ != nullptr) warnIfFailed(cudaFree(data_), "cudaFree");
    data_ = nullptr;
    size_ = 0;
}

void DeviceBuffer::fill(int byte) const {
    if (data_ == nullptr) return;
    DeviceGuard guard(device_);
    cudaCheck(cudaMemsetAsync(data_, byte, size_, nullptr), "cudaMemset of {} bytes on GPU {}",
              size_, device_);
    cudaCheck(cudaStreamSynchronize(nullptr), "cudaMemset on GPU {}", device_);
}

}  // namespace weightsync::platform
