// weightsync._core: the C++ engine as a Python extension. The pure-Python package `weightsync`
// wraps it (torch tensors, DTensor shards, the vLLM worker extension); import that instead.

#include "bindings.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "weightsync C++ core (use the `weightsync` package rather than this module)";
    weightsync::python::registerErrors(m);
    weightsync::python::registerLayout(m);
    weightsync::python::registerControl(m);
    weightsync::python::registerAgents(m);
    weightsync::python::registerCuda(m);
}
