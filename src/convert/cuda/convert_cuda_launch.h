#pragma once
// Internal seam between the host side of convert/cuda (checks, layout lookups; C++) and
// convert_cuda_kernels.cu (the kernels). nvcc cannot compile fmt's consteval format strings, so
// the .cu side sees no weightsync::Error: plain parameters in, cudaError_t out.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define WEIGHTSYNC_HOST_DEVICE __host__ __device__
#else
#define WEIGHTSYNC_HOST_DEVICE
#endif

namespace weightsync::convert::detail {

/// The splitmix64 finalizer of convert/synthetic.cc, usable on both sides.
WEIGHTSYNC_HOST_DEVICE inline uint64_t syntheticMix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// A dense [groups][rows][cols] box of one source tensor, starting at global (g0, r0).
struct SyntheticFillDesc {
    void *out;
    uint64_t key;       // mix(seed ^ mix(index + 1))
    uint64_t step_key;  // mix(key ^ mix(step + 0x5151))
    int64_t g0, r0, groups, rows, cols;
    int64_t tensor_rows;  // canonical R of the whole tensor
    bool bf16;            // else fp32
    bool vec;             // cols % 8 == 0 and out 16-byte aligned
};

cudaError_t launchSyntheticFill(const SyntheticFillDesc &desc, cudaStream_t stream);

/// Atomically adds to *counter (device memory) the number of bytes where a and b differ.
cudaError_t launchCountMismatches(const void *a, const void *b, size_t bytes,
                                  unsigned long long *counter, cudaStream_t stream);

}  // namespace weightsync::convert::detail
