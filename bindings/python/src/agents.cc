// The trainer and inference agents from Python. Every blocking call releases the GIL; the
// inference agent's post-update callback takes it back to run Python hooks.

#include "bindings.h"
#include "tensor_sources.h"

#include "common/error.h"
#include "common/log.h"
#include "engine/agent_metrics.h"
#include "engine/inference_agent.h"
#include "engine/trainer_agent.h"
#include "sim/synthetic_check.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <nlohmann/json.hpp>

namespace weightsync::python {

namespace {

using engine::InferenceAgent;
using engine::TrainerAgent;

py::dict stepResultDict(const engine::StepResult &r) {
    py::dict d;
    d["version"] = r.version;
    d["committed"] = r.committed;
    d["verified"] = r.verified;
    d["checked_bytes"] = r.checked_bytes;
    d["mismatched_bytes"] = r.mismatched_bytes;
    d["wait_seconds"] = r.wait_seconds;
    d["hook_seconds"] = r.hook_seconds;
    d["verify_seconds"] = r.verify_seconds;
    d["check_seconds"] = r.check_seconds;
    d["paused_seconds"] = r.paused_seconds;
    return d;
}

/// The rank's readers as Python callables: pause() returns once the caller stopped reading the
/// live tensors, resume() lets it read again (the agent calls them from its serving thread, which
/// holds no GIL; they take it).
class PyReaders : public engine::WeightReaders {
  public:
    PyReaders(py::function pause, py::function resume)
        : pause_(std::move(pause)), resume_(std::move(resume)) {}
    ~PyReaders() override {
        const py::gil_scoped_acquire gil;
        pause_ = py::function();
        resume_ = py::function();
    }
    PyReaders(const PyReaders &) = delete;
    PyReaders &operator=(const PyReaders &) = delete;
    void pause() override { call(pause_, "pause"); }
    void resume() override { call(resume_, "resume"); }

  private:
    static void call(const py::function &f, const char *what) {
        const py::gil_scoped_acquire gil;
        try {
            f();
        } catch (py::error_already_set &e) {
            // A Python exception fails the version like any other error here.
            fail(Errc::kInvalidArgument, "the readers' {}() raised: {}", what, e.what());
        }
    }
    py::function pause_;
    py::function resume_;
};

/// (name, data pointer, shape, dtype, device) -> ExternalTensor; device -1 = host memory.
using TensorTuple = std::tuple<std::string, uintptr_t, Shape, std::string, int>;
/// (name, data pointer, dtype, shape, offset, device): one TensorSources::setShard.
using ShardTuple = std::tuple<std::string, uintptr_t, std::string, Shape, int64_t, int>;

std::vector<engine::ExternalTensor> externalTensors(const std::vector<TensorTuple> &tensors) {
    std::vector<engine::ExternalTensor> out;
    for (const auto &[name, data, shape, dtype, device] : tensors) {
        engine::ExternalTensor t;
        t.name = name;
        t.shape = shape;
        t.dtype = parseDType(dtype);
        t.data = pointer<std::byte>(data);
        t.kind = device < 0 ? transport::MemoryKind::kHost : transport::MemoryKind::kCuda;
        t.device = device;
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

void registerAgents(py::module_ &m) {
    m.def(
        "set_log_level",
        [](const std::string &level) {
            const auto parsed = spdlog::level::from_str(level);
            check(parsed != spdlog::level::off || level == "off", Errc::kInvalidArgument,
                  "unknown log level '{}' (trace, debug, info, warn, error, off)", level);
            setLogLevel(parsed);
        },
        py::arg("level"),
        "Level of the engine's logs on stderr (default warn; info shows each agent's start-up).");
    py::class_<TensorSources, std::shared_ptr<TensorSources>>(
        m, "TensorSources",
        "A trainer rank's weights in the caller's memory, read in place at every push.")
        .def(py::init([](const layout::Layout &layout, const planner::TrainerMesh &mesh, int rank) {
                 return std::make_shared<TensorSources>(layout, mesh, rank);
             }),
             py::arg("layout"), py::arg("mesh"), py::arg("rank"))
        .def(
            "set_shard",
            [](TensorSources &s, const std::string &name, uintptr_t data, const std::string &dtype,
               const Shape &shape, int64_t offset,
               int device) { s.setShard(name, data, parseDType(dtype), shape, offset, device); },
            py::arg("name"), py::arg("data"), py::arg("dtype"), py::arg("shape"),
            py::arg("offset") = 0, py::arg("device") = -1)
        .def(
            "set_shards",
            [](TensorSources &s, const std::vector<ShardTuple> &shards) {
                for (const auto &[name, data, dtype, shape, offset, device] : shards) {
                    s.setShard(name, data, parseDType(dtype), shape, offset, device);
                }
            },
            py::arg("shards"),
            "Bulk set_shard: (name, data, dtype, shape, offset, device) per tensor, in one call.")
        .def(
            "set_full",
            [](TensorSources &s, const std::string &name, uintptr_t data, const std::string &dtype,
               const Shape &shape,
               int device) { s.setFull(name, data, parseDType(dtype), shape, device); },
            py::arg("name"), py::arg("data"), py::arg("dtype"), py::arg("shape"),
            py::arg("device") = -1)
        .def_property_readonly("device", &TensorSources::device,
                               "-1: host memory (or nothing registered), else the CUDA ordinal.")
        .def("clear_fulls", &TensorSources::clearFulls)
        .def("unset", &TensorSources::unset, py::arg("name"))
        .def("missing", &TensorSources::missing)
        .def("holds_whole", &TensorSources::holdsWhole, py::arg("name"));

    py::class_<engine::AgentMetrics, std::shared_ptr<engine::AgentMetrics>>(
        m, "AgentMetrics",
        "An agent's Prometheus counters (engine/agent_metrics.h); raises UnsupportedError in a "
        "build without prometheus-cpp.")
        .def(py::init<const std::string &, const std::string &>(), py::arg("role"),
             py::arg("agent"))
        .def("text", &engine::AgentMetrics::text, "The /metrics exposition (text format).")
        .def(
            "snapshot",
            [](const engine::AgentMetrics &metrics) { return metrics.snapshot().dump(); },
            "The same numbers as a JSON object (text).");
    py::class_<engine::MetricsServer>(m, "MetricsServer",
                                      "Serves AgentMetrics at http://host:port/metrics.")
        .def(py::init<std::shared_ptr<engine::AgentMetrics>, const std::string &, int>(),
             py::arg("metrics"), py::arg("host"), py::arg("port"))
        .def_property_readonly("port", &engine::MetricsServer::port);

    py::class_<TrainerAgent>(m, "TrainerAgent", "One trainer rank (engine::TrainerAgent).")
        .def(py::init([](std::shared_ptr<control::Store> store, int rank,
                         std::shared_ptr<TensorSources> sources) {
                 return std::make_unique<TrainerAgent>(
                     std::move(store), rank,
                     std::shared_ptr<const convert::SourceProvider>(std::move(sources)));
             }),
             py::arg("store"), py::arg("rank"), py::arg("sources") = nullptr,
             "Without sources the agent pushes the job's synthetic weights.")
        .def("use_metrics", &TrainerAgent::useMetrics, py::arg("metrics"))
        .def("init", &TrainerAgent::init, py::call_guard<py::gil_scoped_release>())
        .def(
            "push",
            [](TrainerAgent &a, uint64_t version) {
                engine::PushMetrics metrics;
                {
                    py::gil_scoped_release release;
                    metrics = a.push(version);
                }
                return jsonToPython(metrics.toJson().dump());
            },
            py::arg("version"))
        .def_property_readonly("rank", &TrainerAgent::rank)
        .def_property_readonly("version", &TrainerAgent::version)
        .def_property_readonly("attempted", &TrainerAgent::attempted)
        .def("leave", &TrainerAgent::leave, py::call_guard<py::gil_scoped_release>(),
             "Announces a clean departure (its end is then not a loss for the job).")
        .def_property_readonly("spec", &TrainerAgent::spec, py::return_value_policy::copy)
        .def_property_readonly(
            "writes_per_push",
            [](const TrainerAgent &a) {
                return a.plan().ranks[static_cast<size_t>(a.rank())].writes.size();
            })
        .def_property_readonly("slot_bytes", [](const TrainerAgent &a) {
            return a.plan().ranks[static_cast<size_t>(a.rank())].arena_bytes;
        });

    py::class_<InferenceAgent>(m, "InferenceAgent", "One inference rank (engine::InferenceAgent).")
        .def(py::init([](std::shared_ptr<control::Store> store, int engine, int rank,
                         const std::vector<TensorTuple> &tensors,
                         std::function<void(uint64_t)> after_update,
                         const std::optional<py::function> &pause,
                         const std::optional<py::function> &resume) {
                 engine::InferenceOptions options;
                 options.tensors = externalTensors(tensors);
                 options.after_update = std::move(after_update);
                 check(pause.has_value() == resume.has_value(), Errc::kInvalidArgument,
                       "InferenceAgent: give both pause and resume, or neither");
                 if (pause) {
                     options.readers = [pause = *pause,
                                        resume = *resume](const engine::LocalWeights & /*live*/) {
                         const py::gil_scoped_acquire gil;
                         return std::make_unique<PyReaders>(pause, resume);
                     };
                 }
                 // Jobs that verify push the synthetic weights (the trainers' own); the check
                 // runs only for them.
                 options.check = std::make_shared<sim::SyntheticCheck>();
                 return std::make_unique<InferenceAgent>(std::move(store), engine, rank,
                                                         std::move(options));
             }),
             py::arg("store"), py::arg("engine"), py::arg("rank"),
             py::arg("tensors") = std::vector<TensorTuple>{}, py::arg("after_update") = nullptr,
             py::arg("pause") = std::nullopt, py::arg("resume") = std::nullopt,
             "tensors: (name, data pointer, shape, dtype, device) of every destination tensor in "
             "layout order, registered in place; empty = the agent allocates its own. "
             "after_update(version) runs before the rank resumes. pause() / resume(): the "
             "readers of the live tensors (engine::WeightReaders), called from the serving "
             "thread: pause() returns once nobody reads them (with flip, only after every rank "
             "landed), resume() once the rank serves again.")
        .def("use_metrics", &InferenceAgent::useMetrics, py::arg("metrics"))
        .def("init", &InferenceAgent::init, py::call_guard<py::gil_scoped_release>())
        .def(
            "serve_step",
            [](InferenceAgent &a, uint64_t version) {
                engine::StepResult r;
                {
                    py::gil_scoped_release release;
                    r = a.serveStep(version);
                }
                return stepResultDict(r);
            },
            py::arg("version"))
        .def("cancel", &InferenceAgent::cancel)
        .def("leave", &InferenceAgent::leave, py::call_guard<py::gil_scoped_release>(),
             "Announces a clean departure (its end is then not a loss for the job).")
        .def_property_readonly("peer", &InferenceAgent::peer, py::return_value_policy::copy)
        .def_property_readonly("version", &InferenceAgent::version)
        .def_property_readonly("next_version", &InferenceAgent::nextVersion)
        .def_property_readonly("spec", &InferenceAgent::spec, py::return_value_policy::copy);
}

}  // namespace weightsync::python
