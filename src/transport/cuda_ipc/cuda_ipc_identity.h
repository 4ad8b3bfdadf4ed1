#pragma once
// What identifies a CUDA IPC process and a region on the wire: the backend address (host, pid,
// GPU) and the descriptor key (IPC handle of the base allocation, the region's offset in it, the
// allocation size, the owner's pid and GPU UUID).

#include "platform/cuda/device.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace weightsync::transport::cuda_ipc {

/// The address() blob: "WSCUDAIPC1:" + JSON.
struct ProcessAddress {
    std::string host;  // hostIdentity(): CUDA IPC works between processes of one host
    int64_t pid = 0;
    int device = -1;  // the backend's GPU, ordinal in the owner's process
    platform::DeviceUuid uuid{};

    [[nodiscard]] std::string encode() const;
    /// Throws kInvalidArgument naming the peer when the blob is not a cuda_ipc address.
    static ProcessAddress decode(const std::string &blob, const std::string &peer);
};

/// The RemoteDescriptor key: a fixed-size binary record (both ends run on one host).
struct IpcKey {
    cudaIpcMemHandle_t handle{};  // of the BASE allocation, not of the region
    uint64_t offset = 0;          // region start - allocation base
    uint64_t base_size = 0;       // allocation size
    int64_t pid = 0;              // owner process
    platform::DeviceUuid uuid{};  // owner GPU

    [[nodiscard]] std::string pack() const;
    /// Throws kInvalidArgument naming the peer when the key is malformed.
    static IpcKey unpack(const std::string &bytes, const std::string &peer);
    /// The handle bytes, as a map key.
    [[nodiscard]] std::string handleBytes() const;
};

}  // namespace weightsync::transport::cuda_ipc
