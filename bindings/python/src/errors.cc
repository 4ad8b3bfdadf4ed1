// weightsync::Error -> a typed Python exception per Errc. The classes are created here (so the
// extension works on its own) and re-exported by weightsync/errors.py. Each carries `.code`, the
// Errc's name ("timeout", "peer lost", ...). TimeoutError also derives from the builtin
// TimeoutError, InvalidArgumentError from ValueError, NotFoundError from LookupError,
// PeerLostError from ConnectionError and IoError from OSError, so generic handlers keep working.

#include "bindings.h"

#include "common/error.h"

#include <array>
#include <utility>

namespace weightsync::python {

namespace {

struct ErrorClass {
    Errc code;
    const char *name;
    PyObject *extra_base;  // a builtin to derive from as well, or nullptr
    const char *doc;
};

PyObject *g_base = nullptr;
std::array<PyObject *, static_cast<size_t>(Errc::kInternal) + 1> g_classes{};

PyObject *newClass(const char *name, PyObject *bases, const char *doc) {
    const std::string qualified = std::string("weightsync._core.") + name;
    PyObject *cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, nullptr);
    if (cls == nullptr) throw py::error_already_set();
    return cls;
}

}  // namespace

void registerErrors(py::module_ &m) {
    g_base = newClass("WeightsyncError", PyExc_Exception,
                      "Base of every weightsync error; `.code` names the error category.");
    py::setattr(g_base, "code", py::none());
    m.add_object("WeightsyncError", py::handle(g_base));
    const ErrorClass classes[] = {
        {Errc::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError,
         "Bad input from the caller: a shape, dtype, name or option."},
        {Errc::kNotFound, "NotFoundError", PyExc_LookupError,
         "A named tensor, layout, key or peer does not exist."},
        {Errc::kMismatch, "MismatchError", nullptr,
         "Two sides disagree: layout fingerprint, tensor size or dtype, chunk count."},
        {Errc::kUnsupported, "UnsupportedError", nullptr,
         "A valid request this build or backend cannot serve (e.g. GPU memory on host UCX)."},
        {Errc::kTimeout, "TimeoutError", PyExc_TimeoutError, "A wait ran past its deadline."},
        {Errc::kPeerLost, "PeerLostError", PyExc_ConnectionError,
         "A remote agent or the coordinator went away, or another agent failed."},
        {Errc::kTransport, "TransportError", nullptr, "A data-plane operation failed."},
        {Errc::kProtocol, "ProtocolError", nullptr,
         "An out-of-order or malformed control message (e.g. a version pushed twice)."},
        {Errc::kIo, "IoError", PyExc_OSError, "A system call failed."},
        {Errc::kCorruption, "CorruptionError", nullptr, "Bytes were verified and found wrong."},
        {Errc::kUnauthenticated, "UnauthenticatedError", PyExc_PermissionError,
         "A control message or store value without the job secret's valid MAC."},
        {Errc::kInternal, "InternalError", nullptr, "A broken invariant inside weightsync."},
    };
    for (const ErrorClass &c : classes) {
        py::tuple bases;
        if (c.extra_base != nullptr) {
            bases = py::make_tuple(py::handle(g_base), py::handle(c.extra_base));
        } else {
            bases = py::make_tuple(py::handle(g_base));
        }
        PyObject *cls = newClass(c.name, bases.ptr(), c.doc);
        py::setattr(cls, "code", py::str(std::string(errcName(c.code))));
        g_classes[static_cast<size_t>(c.code)] = cls;
        m.add_object(c.name, py::handle(cls));
    }

    // pybind11 takes a plain function of an exception_ptr by value.
    // NOLINTNEXTLINE(performance-unnecessary-value-param)
    py::register_exception_translator([](std::exception_ptr p) {
        if (!p) return;
        try {
            std::rethrow_exception(p);
        } catch (const Error &e) {
            PyObject *cls = g_classes[static_cast<size_t>(e.code())];
            if (cls == nullptr) cls = g_base;
            // Builtin bases such as OSError interpret extra arguments: pass the message alone.
            PyErr_SetString(cls, e.what());
        }
    });
}

py::object jsonToPython(const std::string &text) {
    return py::module_::import("json").attr("loads")(py::str(text));
}

}  // namespace weightsync::python
