#pragma once
// Work an inference rank does after new weights land and before it reads them: tensors that vLLM
// derives from the weights at load time (e.g. GLM-5's absorbed MLA weights) are not written by
// anybody, so they must be recomputed after every update or they go stale.

#include "layout/layout.h"
#include "planner/geometry.h"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::engine {

/// The destination tensors of one inference rank, by layout.dests() index.
struct LocalWeights {
    const layout::Layout *layout = nullptr;
    std::vector<planner::LocalTensor> tensors;
    std::vector<std::byte *> data;
    bool on_device = false;  // data are CUDA device pointers
    int device = -1;         // their GPU (-1: the current device)

    [[nodiscard]] const std::byte *find(const std::string &name) const;
    [[nodiscard]] const planner::LocalTensor &info(const std::string &name) const;
};

class UpdateHook {
  public:
    virtual ~UpdateHook() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    /// The destination tensors afterUpdate reads (host copies are made for device weights).
    [[nodiscard]] virtual std::vector<std::string> inputs(const layout::Layout &layout) const = 0;
    /// Whether afterUpdate accepts device pointers (else it gets host copies of its inputs).
    [[nodiscard]] virtual bool supportsDevice() const { return false; }
    /// Runs after version `version` landed completely, before the rank resumes.
    virtual void afterUpdate(uint64_t version, const LocalWeights &weights) = 0;
};

/// GLM-5 / DeepSeek MLA: recomputes the absorbed attention weights from the FP8 kv_b_proj the
/// way vLLM's MLA backend does after loading: dequantize, view [kv_lora, heads, nope + v],
/// W_UV = w_uv.transpose(0, 1) [heads, kv_lora, v] and W_UK_T = w_uk.permute(1, 2, 0)
/// [heads, nope, kv_lora], both bf16.
class MlaAbsorbHook : public UpdateHook {
  public:
    MlaAbsorbHook(int64_t nope, int64_t v_head);
    [[nodiscard]] std::string name() const override { return "mla-absorb"; }
    MlaAbsorbHook(const MlaAbsorbHook &) = delete;
    MlaAbsorbHook &operator=(const MlaAbsorbHook &) = delete;
    ~MlaAbsorbHook() override;
    [[nodiscard]] std::vector<std::string> inputs(const layout::Layout &layout) const override;
    /// With CUDA, device weights are absorbed on the GPU (kernels/mla/mla_absorb.cuh).
    [[nodiscard]] bool supportsDevice() const override;
    void afterUpdate(uint64_t version, const LocalWeights &weights) override;

    /// The derived tensors, per layer that has a kv_b_proj (layer order); host copies (fetched
    /// from the GPU on first use after a device update).
    struct Derived {
        std::string layer;
        std::vector<uint16_t> w_uv, w_uk_t;
    };
    [[nodiscard]] const std::vector<Derived> &derived();
    /// Computes the derived tensors of one kv_b_proj (fp8 bytes + fp32 scales).
    void derive(const std::byte *weight, const std::byte *scales, int64_t rows, int64_t cols,
                Derived &out) const;

  private:
    void afterUpdateDevice(const LocalWeights &weights,
                           const std::vector<const layout::DestTensor *> &layers);

    int64_t nope_, v_head_;
    std::vector<Derived> derived_;
    struct DeviceOutputs;                    // the derived tensors in GPU memory (CUDA builds)
    std::unique_ptr<DeviceOutputs> device_;  // null until a device update
    bool fetched_ = true;                    // derived_ holds the latest device results
};

/// The hooks a model needs (GLM-5 gets MlaAbsorbHook; others none).
std::vector<std::unique_ptr<UpdateHook>> hooksFor(const std::string &model);

}  // namespace weightsync::engine
