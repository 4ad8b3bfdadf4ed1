#include "engine/hooks.h"

#include "common/error.h"
#include "kernels/fp8/e4m3.h"
#include "layout/glm5.h"

#include <cstring>
#include <exception>
#include <thread>

namespace weightsync::engine {

const std::byte *LocalWeights::find(const std::string &name) const {
    return data[layout->destIndex(name)];
}

const planner::LocalTensor &LocalWeights::info(const std::string &name) const {
    return tensors[layout->destIndex(name)];
}

void MlaAbsorbHook::derive(const std::byte *weight, const std::byte *scales, int64_t rows,
                           int64_t cols, Derived &out) const {
    const int64_t per_head = nope_ + v_head_;
    check(rows % per_head == 0, Errc::kInvalidArgument,
          "kv_b_proj has {} rows, not a multiple of nope + v = {}", rows, per_head);
    const int64_t heads = rows / per_head;
    const int64_t bcols = (cols + 127) / 128;
    const auto *q = reinterpret_cast<const uint8_t *>(weight);
    const auto *s = reinterpret_cast<const float *>(scales);
    out.w_uv.assign(static_cast<size_t>(heads * cols * v_head_), 0);
    out.w_uk_t.assign(static_cast<size_t>(heads * nope_ * cols), 0);
    for (int64_t h = 0; h < heads; ++h) {
        for (int64_t j = 0; j < per_head; ++j) {
            const int64_t r = h * per_head + j;
            for (int64_t l = 0; l < cols; ++l) {
                float scale = 0;
                std::memcpy(&scale, s + (r / 128) * bcols + l / 128, sizeof scale);
                const uint16_t v = f32ToBf16Bits(kernels::e4m3ToF32(q[r * cols + l]) * scale);
                if (j < nope_) {
                    out.w_uk_t[static_cast<size_t>((h * nope_ + j) * cols + l)] = v;
                } else {
                    out.w_uv[static_cast<size_t>((h * cols + l) * v_head_ + (j - nope_))] = v;
                }
            }
        }
    }
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
