#pragma once
// The pieces of the weightsync._core extension: one registerX(m) per area (errors, layout and
// plan, control, agents, GPU helpers), called in that order by module.cc, plus the small
// conversions they share. The binding is thin: every check and every byte of work happens in the
// C++ core.

#include "common/dtype.h"

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace weightsync::python {

namespace py = pybind11;

void registerErrors(py::module_ &m);
void registerLayout(py::module_ &m);
void registerControl(py::module_ &m);
void registerAgents(py::module_ &m);
void registerCuda(py::module_ &m);

/// Seconds (Python float) to milliseconds, rounded up so that a tiny positive timeout still waits.
inline std::chrono::milliseconds toMillis(double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 + 0.999));
}

/// A pointer that arrives from Python as an integer (tensor.data_ptr()).
template <typename T>
T *pointer(uintptr_t address) {
    return reinterpret_cast<T *>(address);  // NOLINT(performance-no-int-to-ptr)
}

inline std::string dtypeString(DType dtype) {
    return std::string(dtypeName(dtype));
}

/// A JSON text as a Python object (json.loads), for metrics and results.
py::object jsonToPython(const std::string &text);

}  // namespace weightsync::python
