#pragma once
// The CUDA IPC backend: one-sided writes between GPUs of one host, from a registered local GPU
// region into a peer process's cudaMalloc allocation mapped with cudaIpcOpenMemHandle. The copies
// are cudaMemcpyAsync device-to-device on the sender's streams: copy engines over NVLink, no
// receiver involvement (needs_target_progress is false). The receiver must keep its allocation
// alive while any sender may still have it mapped. This header is public and carries no CUDA
// types; the implementation lives in cuda_ipc_backend_impl.h.

#include "transport/transport.h"

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <memory>

namespace weightsync::transport {

struct CudaIpcOptions {
    int streams = 4;                        // copy streams, used round-robin
    size_t chunk_bytes = size_t{64} << 20;  // writes larger than this are split over the streams
    int device = -1;  // GPU the backend copies on; -1 = the current device when it is created

    /// Reads {"streams", "chunk_bytes", "device"}; unknown keys or bad values -> kInvalidArgument.
    static CudaIpcOptions fromJson(const nlohmann::json &json);
};

/// Creates a CUDA IPC backend. Throws kUnsupported when no CUDA device is visible.
std::unique_ptr<TransportBackend> makeCudaIpcBackend(const CudaIpcOptions &options);

}  // namespace weightsync::transport
