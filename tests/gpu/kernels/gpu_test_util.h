#pragma once
// GPU test helpers: a skipping fixture and device mirrors of host tensors.

#include "unit/kernels/kernels_test_util.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

namespace weightsync::kernels::testing {

/// Skips every test when no CUDA device is usable (no driver, no GPU, or cudaGetDeviceCount fails).
class GpuTest : public ::testing::Test {
  protected:
    void SetUp() override {
        int count = 0;
        const cudaError_t err = cudaGetDeviceCount(&count);
        if (err != cudaSuccess || count == 0) {
            (void)cudaGetLastError();  // leave no error behind for later calls
            GTEST_SKIP() << "no CUDA device (" << cudaGetErrorString(err) << ", " << count << ")";
        }
        ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
    }
    void TearDown() override {
        if (stream_ != nullptr) cudaStreamDestroy(stream_);
    }
    cudaStream_t stream_ = nullptr;
};

#define WS_CUDA_OK(expr)                                                \
    do {                                                                \
        const cudaError_t ws_err_ = (expr);                             \
        ASSERT_EQ(ws_err_, cudaSuccess) << cudaGetErrorString(ws_err_); \
    } while (0)

/// The device copy of a HostTensor's whole backing store (padding included), so the same views
/// (with the data pointer swapped) describe both.
template <typename T>
class DeviceMirror {
  public:
    explicit DeviceMirror(const HostTensor<T> &host) : host_(host) {
        bytes_ = host.data.size() * sizeof(T);
        if (cudaMalloc(&ptr_, bytes_) != cudaSuccess) ptr_ = nullptr;
        if (ptr_ != nullptr) cudaMemcpy(ptr_, host.data.data(), bytes_, cudaMemcpyHostToDevice);
    }
    ~DeviceMirror() { cudaFree(ptr_); }
    DeviceMirror(const DeviceMirror &) = delete;
    DeviceMirror &operator=(const DeviceMirror &) = delete;

    bool ok() const { return ptr_ != nullptr; }
    /// A host view's counterpart: same shape and strides, same element offset from the start.
    View3 view(const View3 &host_view) const {
        View3 v = host_view;
        v.data =
            static_cast<T *>(ptr_) + (static_cast<const T *>(host_view.data) - host_.data.data());
        return v;
    }
    ConstView3 cview(const ConstView3 &host_view) const {
        ConstView3 v = host_view;
        v.data = static_cast<const T *>(ptr_) +
                 (static_cast<const T *>(host_view.data) - host_.data.data());
        return v;
    }
    /// Sets every byte of the device copy to `byte` (poisons outputs between runs).
    void poison(int byte) const { cudaMemset(ptr_, byte, bytes_); }
    std::vector<T> download() const {
        std::vector<T> out(host_.data.size());
        cudaMemcpy(out.data(), ptr_, bytes_, cudaMemcpyDeviceToHost);
        return out;
    }

  private:
    const HostTensor<T> &host_;
    void *ptr_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace weightsync::kernels::testing
