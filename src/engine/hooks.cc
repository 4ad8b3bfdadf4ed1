#include "engine/hooks.h"

#include "common/error.h"
#include "kernels/mla/mla_absorb_ref.h"
#include "layout/glm5.h"

#include <cstring>

#if WEIGHTSYNC_HAVE_CUDA
#include "kernels/mla/mla_absorb.cuh"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"

#include <cuda_runtime.h>
#endif
#include <exception>
#include <thread>

namespace weightsync::engine {

const std::byte *LocalWeights::find(const std::string &name) const {
    return data[layout->destIndex(name)];
}

const planner::LocalTensor &LocalWeights::info(const std::string &name) const {
    return tensors[layout->destIndex(name)];
}

#if WEIGHTSYNC_HAVE_CUDA
struct MlaAbsorbHook::DeviceOutputs {
    std::vector<platform::DeviceBuffer> w_uv, w_uk_t;
};
#else
struct MlaAbsorbHook::DeviceOutputs {};
#endif

MlaAbsorbHook::MlaAbsorbHook(int64_t nope, int64_t v_head) : nope_(nope), v_head_(v_head) {}

MlaAbsorbHook::~MlaAbsorbHook() = default;

bool MlaAbsorbHook::supportsDevice() const {
#if WEIGHTSYNC_HAVE_CUDA
    return true;
#else
    return false;  // (the macro is undefined in CPU-only builds: no expression may use it)
#endif
}

void MlaAbsorbHook::derive(const std::byte *weight, const std::byte *scales, int64_t rows,
                           int64_t cols, Derived &out) const {
    const int64_t per_head = nope_ + v_head_;
    check(rows % per_head == 0, Errc::kInvalidArgument,
          "kv_b_proj has {} rows, not a multiple of nope + v = {}", rows, per_head);
    const int64_t heads = rows / per_head;
    out.w_uv.assign(static_cast<size_t>(heads * cols * v_head_), 0);
    out.w_uk_t.assign(static_cast<size_t>(heads * nope_ * cols), 0);
    kernels::mlaAbsorbRef(reinterpret_cast<const uint8_t *>(weight),
                          reinterpret_cast<const float *>(scales), {rows, cols, nope_, v_head_},
                          out.w_uv.data(), out.w_uk_t.data());
}

const std::vector<MlaAbsorbHook::Derived> &MlaAbsorbHook::derived() {
#if WEIGHTSYNC_HAVE_CUDA
    if (!fetched_ && device_) {
        for (size_t i = 0; i < derived_.size(); ++i) {
            derived_[i].w_uv.resize(device_->w_uv[i].size() / 2);
            derived_[i].w_uk_t.resize(device_->w_uk_t[i].size() / 2);
            platform::cudaCheck(cudaMemcpy(derived_[i].w_uv.data(), device_->w_uv[i].data(),
                                           device_->w_uv[i].size(), cudaMemcpyDeviceToHost),
                                "fetching W_UV");
            platform::cudaCheck(cudaMemcpy(derived_[i].w_uk_t.data(), device_->w_uk_t[i].data(),
                                           device_->w_uk_t[i].size(), cudaMemcpyDeviceToHost),
                                "fetching W_UK_T");
        }
    }
#endif
    fetched_ = true;
    return derived_;
}

void MlaAbsorbHook::afterUpdateDevice(const LocalWeights &weights,
                                      const std::vector<const layout::DestTensor *> &layers) {
#if WEIGHTSYNC_HAVE_CUDA
    const std::string suffix = "self_attn.kv_b_proj.weight";
    const int device = weights.device >= 0 ? weights.device : platform::currentDevice();
    const platform::DeviceGuard guard(device);  // the serving thread may be on another GPU
    if (!device_) device_ = std::make_unique<DeviceOutputs>();
    device_->w_uv.resize(layers.size());
    device_->w_uk_t.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        const layout::DestTensor &d = *layers[i];
        const planner::LocalTensor &t = weights.info(d.name);
        const int64_t rows = t.shape[0];
        const int64_t cols = t.shape[1];
        const int64_t per_head = nope_ + v_head_;
        check(rows % per_head == 0, Errc::kInvalidArgument,
              "kv_b_proj has {} rows, not a multiple of nope + v = {}", rows, per_head);
        const size_t uv_bytes = static_cast<size_t>(rows / per_head * cols * v_head_) * 2;
        const size_t uk_bytes = static_cast<size_t>(rows / per_head * nope_ * cols) * 2;
        if (device_->w_uv[i].size() != uv_bytes) device_->w_uv[i] = {uv_bytes, device};
        if (device_->w_uk_t[i].size() != uk_bytes) device_->w_uk_t[i] = {uk_bytes, device};
        derived_[i].layer = d.name.substr(0, d.name.size() - suffix.size());
        platform::cudaCheck(
            kernels::mlaAbsorb(reinterpret_cast<const uint8_t *>(weights.find(d.name)),
                               reinterpret_cast<const float *>(weights.find(d.name + "_scale_inv")),
                               {rows, cols, nope_, v_head_}, device_->w_uv[i].as<uint16_t>(),
                               device_->w_uk_t[i].as<uint16_t>(), nullptr),
            "MLA absorb of {}", d.name);
    }
    platform::cudaCheck(cudaDeviceSynchronize(), "MLA absorb");
    fetched_ = false;
#else
    (void)weights;
    (void)layers;
    fail(Errc::kUnsupported, "device weights need a CUDA build");
#endif
}

std::vector<std::string> MlaAbsorbHook::inputs(const layout::Layout &layout) const {
    std::vector<std::string> names;
    for (const layout::DestTensor &d : layout.dests()) {
        if (d.name.ends_with("self_attn.kv_b_proj.weight")) {
            names.push_back(d.name);
            names.push_back(d.name + "_scale_inv");
        }
    }
    return names;
}

void MlaAbsorbHook::afterUpdate(uint64_t /*version*/, const LocalWeights &weights) {
    const std::string suffix = "self_attn.kv_b_proj.weight";
    std::vector<const layout::DestTensor *> layers;
    for (const layout::DestTensor &d : weights.layout->dests()) {
        if (d.name.ends_with(suffix)) layers.push_back(&d);
    }
    derived_.assign(layers.size(), {});
    if (weights.on_device) {
        afterUpdateDevice(weights, layers);
        return;
    }
    fetched_ = true;
    // One thread per layer: the update's pause lasts until every derived tensor is ready.
    std::vector<std::thread> threads;
    std::vector<std::exception_ptr> errors(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        threads.emplace_back([&, i] {
            try {
                const layout::DestTensor &d = *layers[i];
                const planner::LocalTensor &t = weights.info(d.name);
                derived_[i].layer = d.name.substr(0, d.name.size() - suffix.size());
                derive(weights.find(d.name), weights.find(d.name + "_scale_inv"), t.shape[0],
                       t.shape[1], derived_[i]);
            } catch (...) {
                errors[i] = std::current_exception();
            }
        });
    }
    for (std::thread &t : threads) t.join();
    for (const std::exception_ptr &e : errors) {
        if (e) std::rethrow_exception(e);
    }
}

std::vector<std::unique_ptr<UpdateHook>> hooksFor(const std::string &model) {
    std::vector<std::unique_ptr<UpdateHook>> hooks;
    if (model.starts_with("glm5")) {
        const layout::Glm5Config c = layout::glm5Config(model);
        hooks.push_back(std::make_unique<MlaAbsorbHook>(c.nope, c.v_head));
    }
    return hooks;
}

}  // namespace weightsync::engine
