#pragma once
// Trainer weights held by the caller (torch tensors in the Python package), read in place:
// TensorSources is the convert::SourceProvider behind a TrainerAgent fed from Python, and
// TensorGenerator the convert::SourceGenerator the reference converter reads whole tensors from.
// TensorSources hands out the pointers where the tensors live (host memory, or one GPU: then the
// engine converts there); TensorGenerator reads host memory. The Python side keeps the tensors
// alive.

#include "convert/source.h"
#include "convert/synthetic.h"
#include "layout/layout.h"
#include "planner/topology.h"

#include <cstdint>
#include <string>
#include <vector>

namespace weightsync::python {

class TensorSources : public convert::SourceProvider {
  public:
    TensorSources(layout::Layout layout, planner::TrainerMesh mesh, int rank);

    /// The rank's piece of source `name`: a dense tensor of `shape` whose first dim starts at
    /// global index `offset` (rows, or experts for expert tensors); the other dims are whole.
    /// A tensor of the global shape (offset 0) is the whole source. The piece must cover what
    /// this rank owns under the mesh (convert::trainerShardBox). `device`: -1 for host memory,
    /// else the CUDA ordinal; every piece of a rank lives on one device. Throws naming the tensor.
    void setShard(const std::string &name, uintptr_t data, DType dtype, const Shape &shape,
                  int64_t offset, int device = -1);
    /// A whole copy of a sharded source (the result of FSDP's full_tensor()) for this push, on
    /// the rank's device.
    void setFull(const std::string &name, uintptr_t data, DType dtype, const Shape &shape,
                 int device = -1);
    void clearFulls();
    /// Forgets the shard registered for `name` (a registration that was refused as a whole).
    void unset(const std::string &name);
    /// Sources without a registered piece (layout order).
    [[nodiscard]] std::vector<std::string> missing() const;
    /// Whether the registered piece of `name` is the whole tensor.
    [[nodiscard]] bool holdsWhole(const std::string &name) const;

    [[nodiscard]] convert::SourceShard shard(uint32_t index) const override;
    [[nodiscard]] convert::SourceShard full(uint32_t index) const override;
    /// The device of the registered pieces (-1: host memory, or nothing registered yet).
    [[nodiscard]] int device() const override { return device_; }

    [[nodiscard]] const layout::Layout &layout() const { return layout_; }

  private:
    layout::Layout layout_;
    planner::TrainerMesh mesh_;
    int rank_;
    std::vector<convert::SourceShard> shards_;  // data == nullptr: not registered
    std::vector<convert::SourceShard> fulls_;
    int device_ = -1;
    std::string device_owner_;  // the first tensor registered: it set device_
};

class TensorGenerator : public convert::SourceGenerator {
  public:
    explicit TensorGenerator(const layout::Layout &layout);
    /// A whole, dense host tensor for source `name`.
    void set(const std::string &name, uintptr_t data, DType dtype, const Shape &shape);
    /// Throws Errc::kInvalidArgument naming the first source not set.
    void checkComplete() const;
    void fill(uint32_t index, int64_t g0, int64_t groups, int64_t r0, int64_t rows,
              void *out) const override;

  private:
    const layout::Layout &layout_;
    std::vector<const std::byte *> data_;
};

}  // namespace weightsync::python
