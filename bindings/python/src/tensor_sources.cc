#include "tensor_sources.h"

#include "bindings.h"

#include "common/error.h"

namespace weightsync::python {

namespace {

void checkDtype(const layout::SourceTensor &s, DType dtype) {
    check(dtype == s.dtype, Errc::kInvalidArgument,
          "trainer tensor '{}' is {}, the layout declares it {} (no implicit casts: the FP8 "
          "scales depend on the precision quantized from)",
          s.name, dtypeName(dtype), dtypeName(s.dtype));
}

std::string where(int device) {
    return device < 0 ? std::string("the CPU") : fmt::format("cuda:{}", device);
}

}  // namespace

TensorSources::TensorSources(layout::Layout layout, planner::TrainerMesh mesh, int rank)
    : layout_(std::move(layout)), mesh_(mesh), rank_(rank) {
    mesh_.validate();
    check(rank_ >= 0 && rank_ < mesh_.ranks(), Errc::kInvalidArgument,
          "trainer rank {} outside the mesh's {} ranks", rank_, mesh_.ranks());
    shards_.resize(layout_.sources().size());
    fulls_.resize(layout_.sources().size());
}

void TensorSources::setShard(const std::string &name, uintptr_t data, DType dtype,
                             const Shape &shape, int64_t offset, int device) {
    const uint32_t index = static_cast<uint32_t>(layout_.sourceIndex(name));
    const layout::SourceTensor &s = layout_.sources()[index];
    checkDtype(s, dtype);
    check(data != 0, Errc::kInvalidArgument, "trainer tensor '{}' has no memory", name);
    const bool first = device_owner_.empty() || device_owner_ == name;
    check(first || device == device_, Errc::kInvalidArgument,
          "trainer tensor '{}' is on {}, but '{}' of this rank is on {}: a trainer rank's "
          "tensors must all live on one device (its GPU, or the CPU), where it converts them",
          name, where(device), device_owner_, where(device_));
    check(shape.size() == s.shape.size() && !shape.empty(), Errc::kInvalidArgument,
          "trainer tensor '{}' has shape {}, the layout's is {}", name, shapeString(shape),
          shapeString(s.shape));
    check(std::equal(shape.begin() + 1, shape.end(), s.shape.begin() + 1), Errc::kInvalidArgument,
          "trainer tensor '{}' has shape {}: only the first dim may be sharded, the layout's "
          "shape is {}",
          name, shapeString(shape), shapeString(s.shape));
    check(offset >= 0 && offset + shape[0] <= s.shape[0], Errc::kInvalidArgument,
          "trainer tensor '{}': a piece of {} at offset {} does not fit the layout's shape {}",
          name, shape[0], offset, shapeString(s.shape));
    const bool expert = s.expert_dim == 0;
    const layout::Extent3 e = layout::sourceExtent(s);
    convert::SourceShard sh;
    sh.data = pointer<const void>(data);
    sh.dtype = dtype;
    sh.cols = e.c;
    sh.row_stride = e.c;
    if (expert) {
        sh.g0 = offset;
        sh.groups = shape[0];
        sh.r0 = 0;
        sh.rows = e.r;
    } else {
        sh.g0 = 0;
        sh.groups = 1;
        sh.r0 = offset;
        sh.rows = shape[0];
    }
    const convert::ShardBox own = convert::trainerShardBox(layout_, index, mesh_, rank_);
    const bool covers = own.groups * own.rows == 0 ||
                        (sh.g0 <= own.g0 && own.g0 + own.groups <= sh.g0 + sh.groups &&
                         sh.r0 <= own.r0 && own.r0 + own.rows <= sh.r0 + sh.rows);
    check(covers, Errc::kMismatch,
          "trainer tensor '{}' holds {} [{}, {}), but trainer rank {} of the mesh (replicas {}, "
          "FSDP {}, EP {}) owns {} [{}, {})",
          name, expert ? "experts" : "rows", expert ? sh.g0 : sh.r0,
          expert ? sh.g0 + sh.groups : sh.r0 + sh.rows, rank_, mesh_.replicas, mesh_.fsdp, mesh_.ep,
          expert ? "experts" : "rows", expert ? own.g0 : own.r0,
          expert ? own.g0 + own.groups : own.r0 + own.rows);
    shards_[index] = sh;
    if (first) {
        device_ = device;
        device_owner_ = name;
    }
}

void TensorSources::setFull(const std::string &name, uintptr_t data, DType dtype,
                            const Shape &shape, int device) {
    const uint32_t index = static_cast<uint32_t>(layout_.sourceIndex(name));
    const layout::SourceTensor &s = layout_.sources()[index];
    checkDtype(s, dtype);
    check(data != 0, Errc::kInvalidArgument, "gathered tensor '{}' has no memory", name);
    check(device == device_, Errc::kInvalidArgument,
          "gathered tensor '{}' is on {}, but this rank's tensors are on {}: the gather must "
          "return the whole tensor on the rank's device",
          name, where(device), where(device_));
    check(shape == s.shape, Errc::kInvalidArgument,
          "gathered tensor '{}' has shape {}, the layout's is {}", name, shapeString(shape),
          shapeString(s.shape));
    const layout::Extent3 e = layout::sourceExtent(s);
    fulls_[index] = {pointer<const void>(data), dtype, 0, e.g, 0, e.r, e.c, e.c};
}

void TensorSources::unset(const std::string &name) {
    shards_[layout_.sourceIndex(name)] = convert::SourceShard{};
    if (name != device_owner_) return;
    // Every other registered shard is on the same device: one of them owns it now; with none
    // left, the next tensor registered decides the device again.
    device_owner_.clear();
    for (size_t i = 0; i < shards_.size() && device_owner_.empty(); ++i) {
        if (shards_[i].data != nullptr) device_owner_ = layout_.sources()[i].name;
    }
    if (device_owner_.empty()) device_ = -1;
}

void TensorSources::clearFulls() {
    for (convert::SourceShard &f : fulls_) f = convert::SourceShard{};
}

std::vector<std::string> TensorSources::missing() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < shards_.size(); ++i) {
        if (shards_[i].data == nullptr) out.push_back(layout_.sources()[i].name);
    }
    return out;
}

bool TensorSources::holdsWhole(const std::string &name) const {
    const size_t index = layout_.sourceIndex(name);
    const convert::SourceShard &sh = shards_[index];
    const layout::Extent3 e = layout::sourceExtent(layout_.sources()[index]);
    return sh.data != nullptr && sh.g0 == 0 && sh.groups == e.g && sh.r0 == 0 && sh.rows == e.r;
}

convert::SourceShard TensorSources::shard(uint32_t index) const {
    check(index < shards_.size(), Errc::kInvalidArgument, "source index {} out of range", index);
    check(shards_[index].data != nullptr, Errc::kNotFound, "trainer tensor '{}' was not registered",
          layout_.sources()[index].name);
    return shards_[index];
}

convert::SourceShard TensorSources::full(uint32_t index) const {
    check(index < fulls_.size(), Errc::kInvalidArgument, "source index {} out of range", index);
    if (fulls_[index].data != nullptr) return fulls_[index];
    const std::string &name = layout_.sources()[index].name;
    check(shards_[index].data != nullptr && holdsWhole(name), Errc::kNotFound,
          "trainer tensor '{}' is gathered onto rank {} by the plan, but no whole copy was "
          "provided for this push",
          name, rank_);
    return shards_[index];
}

TensorGenerator::TensorGenerator(const layout::Layout &layout)
    : layout_(layout), data_(layout.sources().size(), nullptr) {}

void TensorGenerator::set(const std::string &name, uintptr_t data, DType dtype,
                          const Shape &shape) {
    const size_t index = layout_.sourceIndex(name);
    const layout::SourceTensor &s = layout_.sources()[index];
    checkDtype(s, dtype);
    check(shape == s.shape, Errc::kInvalidArgument,
          "reference input '{}' has shape {}, the layout's is {}", name, shapeString(shape),
          shapeString(s.shape));
    check(data != 0, Errc::kInvalidArgument, "reference input '{}' has no memory", name);
    data_[index] = pointer<const std::byte>(data);
}

void TensorGenerator::checkComplete() const {
    for (size_t i = 0; i < data_.size(); ++i) {
        check(data_[i] != nullptr, Errc::kInvalidArgument, "reference input '{}' is missing",
              layout_.sources()[i].name);
    }
}

void TensorGenerator::fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
                           void *out) const {
    convert::copyFromWholeTensor(layout_, index, data_[index], g0, groups, r0, rows, out);
}

}  // namespace weightsync::python
