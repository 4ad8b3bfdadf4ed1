// GPU helpers for tests and benchmarks of CUDA tensors: the job's synthetic trainer weights
// generated in place on a GPU, and the reference conversion on the GPU compared byte for byte
// with an inference rank's device tensors. Without CUDA in this build they raise UnsupportedError.

#include "bindings.h"

#include "common/error.h"
#include "layout/layout.h"
#include "planner/geometry.h"
#include "planner/topology.h"

#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#if WEIGHTSYNC_HAVE_CUDA
#include "convert/cuda/cuda_reference.h"
#include "convert/cuda/synthetic_cuda.h"
#include "convert/synthetic.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#endif

namespace weightsync::python {

namespace {

using SourceTuple = std::tuple<uintptr_t, std::string, Shape>;  // (device pointer, dtype, shape)

#if WEIGHTSYNC_HAVE_CUDA

void syntheticFill(const layout::Layout &layout, const std::string &name, uint64_t seed,
                   uint64_t version, uintptr_t data, int64_t offset, int64_t count, int device) {
    const auto index = static_cast<uint32_t>(layout.sourceIndex(name));
    const layout::SourceTensor &s = layout.sources()[index];
    const layout::Extent3 e = layout::sourceExtent(s);
    const bool expert = s.expert_dim == 0;
    const int64_t extent = expert ? e.g : e.r;
    const int64_t n = count < 0 ? extent - offset : count;
    check(data != 0 && offset >= 0 && n > 0 && offset + n <= extent, Errc::kInvalidArgument,
          "synthetic fill of '{}': [{}, +{}) along dim 0 of {}", name, offset, n,
          shapeString(s.shape));
    platform::DeviceGuard guard(device);
    platform::Stream stream(device);
    convert::syntheticFillCuda(layout, index, seed, version, expert ? offset : 0, expert ? n : 1,
                               expert ? 0 : offset, expert ? e.r : n, pointer<void>(data),
                               stream.get());
    stream.synchronize();
}

py::dict compareReference(const layout::Layout &layout, const planner::PeerSpec &peer,
                          const std::vector<uintptr_t> &tensors, int device,
                          std::optional<uint64_t> seed, uint64_t version,
                          const std::optional<py::dict> &sources) {
    check(seed.has_value() != sources.has_value(), Errc::kInvalidArgument,
          "compare_reference_cuda: give either seed (synthetic weights) or sources");
    std::vector<const std::byte *> pointers;
    for (uintptr_t p : tensors) pointers.push_back(pointer<const std::byte>(p));
    std::vector<int64_t> bad;
    platform::DeviceGuard guard(device);
    platform::Stream stream(device);
    if (seed) {
        convert::CudaReference reference(layout, *seed, device);
        py::gil_scoped_release release;
        bad = reference.compare(peer, version, pointers, stream.get());
    } else {
        std::vector<const void *> whole(layout.sources().size(), nullptr);
        for (const auto &[key, value] : *sources) {
            const auto name = key.cast<std::string>();
            const auto [data, dtype, shape] = value.cast<SourceTuple>();
            const layout::SourceTensor &s = layout.source(name);
            check(parseDType(dtype) == s.dtype && shape == s.shape, Errc::kInvalidArgument,
                  "reference input '{}' is {} {}, the layout's is {} {}", name, shapeString(shape),
                  dtype, shapeString(s.shape), dtypeName(s.dtype));
            whole[layout.sourceIndex(name)] = pointer<const void>(data);
        }
        convert::CudaReference reference(layout, std::move(whole), device);
        py::gil_scoped_release release;
        bad = reference.compare(peer, version, pointers, stream.get());
    }
    py::dict out;
    for (size_t i = 0; i < bad.size(); ++i) out[py::str(layout.dests()[i].name)] = bad[i];
    return out;
}

#else

[[noreturn]] void noCuda() {
    fail(Errc::kUnsupported, "this weightsync was built without CUDA");
}

#endif

}  // namespace

void registerCuda(py::module_ &m) {
#if WEIGHTSYNC_HAVE_CUDA
    m.attr("has_cuda") = true;
#else
    m.attr("has_cuda") = false;
#endif
    m.def(
        "synthetic_fill_cuda",
        [](const layout::Layout &layout, const std::string &name, uint64_t seed, uint64_t version,
           uintptr_t data, int64_t offset, int64_t count, int device) {
#if WEIGHTSYNC_HAVE_CUDA
            syntheticFill(layout, name, seed, version, data, offset, count, device);
#else
            (void)layout, (void)name, (void)seed, (void)version, (void)data, (void)offset,
                (void)count, (void)device;
            noCuda();
#endif
        },
        py::arg("layout"), py::arg("name"), py::arg("seed"), py::arg("version"), py::arg("data"),
        py::arg("offset") = 0, py::arg("count") = -1, py::arg("device") = 0,
        "Fills device memory at `data` with rows (or experts) [offset, offset + count) of source "
        "`name`'s synthetic values (seed, version): the demo's trainer weights, on a GPU.");
    m.def(
        "compare_reference_cuda",
        [](const layout::Layout &layout, const planner::PeerSpec &peer,
           const std::vector<uintptr_t> &tensors, int device, std::optional<uint64_t> seed,
           uint64_t version, const std::optional<py::dict> &sources) {
#if WEIGHTSYNC_HAVE_CUDA
            return compareReference(layout, peer, tensors, device, seed, version, sources);
#else
            (void)layout, (void)peer, (void)tensors, (void)device, (void)seed, (void)version,
                (void)sources;
            noCuda();
#endif
        },
        py::arg("layout"), py::arg("peer"), py::arg("tensors"), py::arg("device"),
        py::arg("seed") = py::none(), py::arg("version") = 0, py::arg("sources") = py::none(),
        "Mismatched bytes per destination name between `peer`'s device tensors (pointers in "
        "layout.dests() order, on `device`) and the reference conversion on the GPU of either the "
        "synthetic weights (seed, version) or `sources`: every source name -> (device pointer, "
        "dtype, shape) of the whole tensor.");
}

}  // namespace weightsync::python
