#include "platform/cuda/device.h"

#include "common/log.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/driver_entry.h"

#include <fmt/format.h>

#include <cstring>

namespace weightsync::platform {

int deviceCount() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

int currentDevice() {
    int device = -1;
    cudaCheck(cudaGetDevice(&device), "cudaGetDevice");
    return device;
}

DeviceUuid deviceUuid(int device) {
    cudaDeviceProp prop{};
    cudaCheck(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties({})", device);
    DeviceUuid uuid{};
    static_assert(sizeof(prop.uuid.bytes) == sizeof(uuid));
    std::memcpy(uuid.data(), prop.uuid.bytes, uuid.size());
    return uuid;
}

std::string uuidString(const DeviceUuid &u) {
    return fmt::format(
        "GPU-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:"
        "02x}"
        "{:02x}{:02x}",
        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15]);
}

int deviceByUuid(const DeviceUuid &uuid) {
    const int count = deviceCount();
    for (int d = 0; d < count; ++d) {
        if (deviceUuid(d) == uuid) return d;
    }
    return -1;
}

std::string deviceName(int device) {
    cudaDeviceProp prop{};
    cudaCheck(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties({})", device);
    return prop.name;
}

bool canAccessPeer(int device, int peer) {
    if (device == peer) return false;
    int can = 0;
    cudaCheck(cudaDeviceCanAccessPeer(&can, device, peer), "cudaDeviceCanAccessPeer({}, {})",
              device, peer);
    return can != 0;
}

void enablePeerAccess(int device, int peer) {
    check(canAccessPeer(device, peer), Errc::kUnsupported,
          "GPU {} cannot access GPU {} directly (cudaDeviceCanAccessPeer is false: no NVLink or "
          "PCIe peer-to-peer path); copies would be staged through host memory",
          device, peer);
    DeviceGuard guard(device);
    const cudaError_t err = cudaDeviceEnablePeerAccess(peer, 0);
    if (err == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();
        return;
    }
    cudaCheck(err, "cudaDeviceEnablePeerAccess from GPU {} to GPU {}", device, peer);
}

bool primaryContextActive(int device) {
    using DeviceGet = CUresult (*)(CUdevice * device, int ordinal);
    using PrimaryCtxGetState = CUresult (*)(CUdevice device, unsigned int *flags, int *active);
    static const auto kDeviceGet = detail::driverEntry<DeviceGet>("cuDeviceGet");
    static const auto kGetState =
        detail::driverEntry<PrimaryCtxGetState>("cuDevicePrimaryCtxGetState");
    CUdevice handle = 0;
    unsigned int flags = 0;
    int active = 0;
    check(kDeviceGet(&handle, device) == CUDA_SUCCESS &&
              kGetState(handle, &flags, &active) == CUDA_SUCCESS,
          Errc::kUnsupported, "cannot read the state of GPU {}'s primary context", device);
    return active != 0;
}

DeviceGuard::DeviceGuard(int device) : device_(device) {
    cudaCheck(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ == device_) return;
    try {
        restore_ = primaryContextActive(previous_);
    } catch (const Error &) {
        restore_ = true;  // unknown: restore, the runtime's own behaviour
    }
    cudaCheck(cudaSetDevice(device_), "cudaSetDevice({})", device_);
}

DeviceGuard::~DeviceGuard() {
    if (previous_ == device_ || !restore_) return;
    const cudaError_t err = cudaSetDevice(previous_);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        logger("cuda")->warn("cannot restore device {}: {}", previous_, cudaErrorText(err));
    }
}

}  // namespace weightsync::platform
