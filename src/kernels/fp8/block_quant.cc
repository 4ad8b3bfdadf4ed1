// Host side of the CUDA block quantizer: view checks, job descriptors, batching into launches.

#include "kernels/fp8/block_quant.cuh"

#include "common/error.h"
#include "kernels/fp8/block_quant_launch.h"

#include <climits>
#include <cstdint>

namespace weightsync::kernels {

static_assert(kMaxQuantJobsPerLaunch == detail::kQuantBatchCap);

namespace {

bool rowsAligned(const void *p, int64_t gs_bytes, int64_t rs_bytes, int64_t groups, int64_t rows,
                 int64_t align) {
    return reinterpret_cast<uintptr_t>(p) % align == 0 && (groups == 1 || gs_bytes % align == 0) &&
           (rows == 1 || rs_bytes % align == 0);
}

int64_t blockCount(const QuantJob &job) {
    return job.src.groups * blocksOf(job.src.rows, kFp8BlockSize) *
           blocksOf(job.src.cols, kFp8BlockSize);
}

detail::QuantJobDesc describe(const QuantJob &job, int64_t first_block) {
    const ConstView3 &s = job.src;
    const auto es = static_cast<int64_t>(dtypeSize(s.dtype));
    detail::QuantJobDesc d{};
    d.src = s.data;
    d.dst = static_cast<uint8_t *>(job.dst.data);
    d.scales = static_cast<float *>(job.scales.data);
    d.src_gs = s.group_stride;
    d.src_rs = s.row_stride;
    d.dst_gs = job.dst.group_stride;
    d.dst_rs = job.dst.row_stride;
    d.sc_gs = job.scales.group_stride;
    d.sc_rs = job.scales.row_stride;
    d.first_block = first_block;
    d.rows = static_cast<int32_t>(s.rows);
    d.cols = static_cast<int32_t>(s.cols);
    d.row_blocks = static_cast<int32_t>(blocksOf(s.rows, kFp8BlockSize));
    d.col_blocks = static_cast<int32_t>(blocksOf(s.cols, kFp8BlockSize));
    const bool vs =
        rowsAligned(s.data, s.group_stride * es, s.row_stride * es, s.groups, s.rows, 16);
    const bool vd =
        rowsAligned(job.dst.data, job.dst.group_stride, job.dst.row_stride, s.groups, s.rows, 8);
    d.vec = (vs ? detail::kQuantVecSrc : 0) | (vd ? detail::kQuantVecDst : 0);
    return d;
}

void checkJob(const QuantJob &job) {
    checkQuantViews(job.src, job.dst, job.scales);
    constexpr int64_t kMaxDim = INT32_MAX - kFp8BlockSize;
    check(job.src.rows <= kMaxDim && job.src.cols <= kMaxDim, Errc::kInvalidArgument,
          "blockQuantizeFp8: rows {} / cols {} exceed the kernel's 32-bit range", job.src.rows,
          job.src.cols);
    check(blockCount(job) <= INT32_MAX, Errc::kInvalidArgument,
          "blockQuantizeFp8: {} blocks in one job exceed one launch", blockCount(job));
}

// Collects the jobs of one source dtype and launches whenever a launch is full.
class Launcher {
  public:
    Launcher(bool src_f32, cudaStream_t stream, unsigned int *nonfinite, int max_ctas)
        : src_f32_(src_f32), stream_(stream), nonfinite_(nonfinite), max_ctas_(max_ctas) {}

    cudaError_t add(const QuantJob &job) {
        const int64_t n = blockCount(job);
        if (n == 0) return cudaSuccess;
        if (count_ == detail::kQuantBatchCap || blocks_ + n > INT32_MAX) {
            const cudaError_t err = flush();
            if (err != cudaSuccess) return err;
        }
        descs_[count_++] = describe(job, blocks_);
        blocks_ += n;
        return cudaSuccess;
    }

    cudaError_t flush() {
        if (count_ == 0) return cudaSuccess;
        const cudaError_t err = detail::launchBlockQuant(descs_, count_, blocks_, src_f32_,
                                                         max_ctas_, stream_, nonfinite_);
        count_ = 0;
        blocks_ = 0;
        return err;
    }

  private:
    bool src_f32_;
    cudaStream_t stream_;
    unsigned int *nonfinite_;
    int max_ctas_;
    detail::QuantJobDesc descs_[detail::kQuantBatchCap] = {};
    int count_ = 0;
    int64_t blocks_ = 0;
};

}  // namespace

cudaError_t blockQuantizeFp8(const ConstView3 &src, const View3 &dst, const View3 &scales,
                             cudaStream_t stream, unsigned int *nonfinite_blocks, int max_ctas) {
    check(max_ctas >= 0, Errc::kInvalidArgument, "blockQuantizeFp8: max_ctas {} < 0", max_ctas);
    const QuantJob job{src, dst, scales};
    checkJob(job);
    const int64_t n = blockCount(job);
    if (n == 0) return cudaSuccess;
    const detail::QuantJobDesc desc = describe(job, 0);
    return detail::launchBlockQuant(&desc, 1, n, src.dtype == DType::kF32, max_ctas, stream,
                                    nonfinite_blocks);
}

cudaError_t blockQuantizeFp8Batch(const QuantJob *jobs, int count, cudaStream_t stream,
                                  unsigned int *nonfinite_blocks, int max_ctas) {
    check(count >= 0 && (count == 0 || jobs != nullptr), Errc::kInvalidArgument,
          "blockQuantizeFp8Batch: bad job list ({} jobs)", count);
    check(max_ctas >= 0, Errc::kInvalidArgument, "blockQuantizeFp8Batch: max_ctas {} < 0",
          max_ctas);
    for (int i = 0; i < count; ++i) checkJob(jobs[i]);
    Launcher bf16(false, stream, nonfinite_blocks, max_ctas);
    Launcher f32(true, stream, nonfinite_blocks, max_ctas);
    for (int i = 0; i < count; ++i) {
        Launcher &launcher = jobs[i].src.dtype == DType::kF32 ? f32 : bf16;
        const cudaError_t err = launcher.add(jobs[i]);
        if (err != cudaSuccess) return err;
    }
    const cudaError_t err = bf16.flush();
    return err != cudaSuccess ? err : f32.flush();
}

}  // namespace weightsync::kernels
