#pragma once
// CUDA devices: how many there are (0 without a driver), their identity, and a guard that makes
// one of them current for a scope.

#include <array>
#include <cstdint>
#include <string>

namespace weightsync::platform {

/// Number of visible CUDA devices; 0 (never an exception) when there is no driver or no device.
int deviceCount();

/// The current device of the calling thread. Throws kUnsupported without a device.
int currentDevice();

/// The 16-byte UUID of a device: the same GPU has the same UUID in every process, whatever its
/// ordinal there (CUDA_VISIBLE_DEVICES renumbers ordinals, not UUIDs).
using DeviceUuid = std::array<uint8_t, 16>;
DeviceUuid deviceUuid(int device);
/// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
std::string uuidString(const DeviceUuid &uuid);
/// The local ordinal of the device with this UUID, or -1 when it is not visible here.
int deviceByUuid(const DeviceUuid &uuid);

/// The marketing name, e.g. "NVIDIA H200".
std::string deviceName(int device);

/// Whether `device` can map memory of `peer` (cudaDeviceCanAccessPeer); false for device == peer.
bool canAccessPeer(int device, int peer);

/// Enables peer access from `device` to `peer` (idempotent: an already enabled pair is fine).
/// Throws kUnsupported when the pair cannot access each other.
void enablePeerAccess(int device, int peer);

/// Whether this process has started `device`'s primary context (the runtime's context there).
bool primaryContextActive(int device);

/// Makes `device` current for the guard's lifetime, then restores the previous current device,
/// if this process uses that one: cudaSetDevice starts a device's context (CUDA 12 and later), so
/// restoring the default device 0 of a thread that never used it would give a process working on
/// GPU 1 a context, and its memory, on GPU 0 as well. Then `device` stays current.
class DeviceGuard {
  public:
    explicit DeviceGuard(int device);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard &) = delete;
    DeviceGuard &operator=(const DeviceGuard &) = delete;

  private:
    int previous_ = -1;
    int device_ = -1;
    bool restore_ = false;
};

}  // namespace weightsync::platform
