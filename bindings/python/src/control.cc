// The control plane from Python: an in-process coordinator (TcpStoreServer), clients of a job's
// namespace in it or in etcd, and the job spec every agent reads at start-up.

#include "bindings.h"

#include "common/error.h"
#include "control/connect.h"
#include "control/prefix_store.h"
#include "control/tcp_store_server.h"
#include "control/wire.h"
#include "engine/job.h"
#include "engine/protocol/session.h"
#include "layout/json_fields.h"
#include "layout/layout.h"

#include <pybind11/stl.h>

#include <nlohmann/json.hpp>

namespace weightsync::python {

namespace {

using engine::JobSpec;

/// The job's namespace in the store at address: "host:port" (a coordinator) or
/// "etcd://host:port[,host:port...][/root]".
std::shared_ptr<control::Store> connectJob(const std::string &address, const std::string &job,
                                           double connect_timeout_s, const std::string &secret) {
    check(!job.empty(), Errc::kInvalidArgument, "the job id must not be empty");
    return control::openJobStore(
        address, job, toMillis(connect_timeout_s),
        secret.empty() ? nullptr : std::make_shared<const control::JobSecret>(secret));
}

py::bytes bytesOf(const std::string &s) {
    return {s.data(), s.size()};
}

}  // namespace

void registerControl(py::module_ &m) {
    py::class_<control::TcpStoreServer>(
        m, "Coordinator",
        "The control-plane store served over TCP from this process (the `weightsync coordinator` "
        "command in-process). Every agent of every job reaches it at host:port.")
        .def(py::init([](const std::string &host, int port, const std::string &job_secret) {
                 control::ServerLimits limits;
                 if (!job_secret.empty()) {
                     limits.job_secret = std::make_shared<const control::JobSecret>(job_secret);
                 }
                 return std::make_unique<control::TcpStoreServer>(host, port, nullptr, limits);
             }),
             py::arg("host") = "127.0.0.1", py::arg("port") = 0,
             py::arg("job_secret") = std::string(),
             "job_secret: serve an authenticated job (every request without its MAC refused).")
        .def_property_readonly("host", &control::TcpStoreServer::host)
        .def_property_readonly("port", &control::TcpStoreServer::port)
        .def_property_readonly("address",
                               [](const control::TcpStoreServer &s) {
                                   return fmt::format("{}:{}", s.host(), s.port());
                               })
        .def_property_readonly("connections", &control::TcpStoreServer::connectionCount)
        .def(
            "job_store",
            [](const control::TcpStoreServer &s, const std::string &job) {
                check(!job.empty(), Errc::kInvalidArgument, "the job id must not be empty");
                return std::shared_ptr<control::Store>(
                    std::make_shared<control::PrefixStore>(job, s.store()));
            },
            py::arg("job"), "The namespace of `job`, served in-process (no TCP round trip).")
        .def("stop", &control::TcpStoreServer::stop, py::call_guard<py::gil_scoped_release>());

    py::class_<control::Store, std::shared_ptr<control::Store>>(
        m, "Store", "A job's namespace in the coordinator. Values are bytes.")
        .def(
            "set",
            [](control::Store &s, const std::string &key, const std::string &value) {
                s.set(key, value);
            },
            py::arg("key"), py::arg("value"), py::call_guard<py::gil_scoped_release>())
        .def(
            "get",
            [](control::Store &s, const std::string &key) -> std::optional<py::bytes> {
                std::optional<std::string> v;
                {
                    py::gil_scoped_release release;
                    v = s.get(key);
                }
                if (!v) return std::nullopt;
                return bytesOf(*v);
            },
            py::arg("key"))
        .def(
            "wait",
            [](control::Store &s, const std::string &key, double timeout_s) {
                std::string v;
                {
                    py::gil_scoped_release release;
                    v = s.wait(key, toMillis(timeout_s));
                }
                return bytesOf(v);
            },
            py::arg("key"), py::arg("timeout"))
        .def(
            "list",
            [](control::Store &s, const std::string &prefix) {
                std::vector<control::KeyValue> kvs;
                {
                    py::gil_scoped_release release;
                    kvs = s.list(prefix);
                }
                py::list out;
                for (const control::KeyValue &kv : kvs)
                    out.append(py::make_tuple(kv.key, bytesOf(kv.value)));
                return out;
            },
            py::arg("prefix") = "");

    m.def("connect_store", &connectJob, py::arg("address"), py::arg("job"),
          py::arg("connect_timeout") = 30.0, py::arg("job_secret") = std::string(),
          py::call_guard<py::gil_scoped_release>(),
          "A client of `job`'s namespace in the store at `address`: a coordinator's host:port or "
          "etcd://host:port[,host:port...][/root] (its own connection).");

    py::class_<JobSpec>(m, "JobSpec",
                        "What every agent of a job reads from the coordinator at start-up.")
        .def(py::init<>())
        .def_readwrite("model", &JobSpec::model)
        .def_readwrite("layers", &JobSpec::layers)
        .def_property(
            "layout",
            [](const JobSpec &s) { return s.layout.is_null() ? std::string() : s.layout.dump(); },
            [](JobSpec &s, const std::string &text) {
                s.layout =
                    text.empty() ? nlohmann::json() : jsonfields::parse(text, "job spec: 'layout'");
            },
            "The job's own layout as JSON text (a derived layout travels in the spec), or "
            "\"\" when `model` names a built-in layout or a layout file.")
        .def_readwrite("mesh", &JobSpec::mesh)
        .def_property(
            "engines", [](const JobSpec &s) { return s.fleet.engines; },
            [](JobSpec &s, std::vector<planner::EngineSpec> engines) {
                s.fleet.engines = std::move(engines);
            })
        .def_property(
            "gather_threshold_bytes",
            [](const JobSpec &s) { return s.planner.gather_threshold_bytes; },
            [](JobSpec &s, int64_t v) { s.planner.gather_threshold_bytes = v; })
        .def_property(
            "stage_bytes", [](const JobSpec &s) { return s.planner.stage_bytes; },
            [](JobSpec &s, int64_t v) {
                check(v >= 0, Errc::kInvalidArgument, "stage_bytes must be >= 0, got {}", v);
                s.planner.stage_bytes = v;
            })
        .def_readwrite("seed", &JobSpec::seed)
        .def_readwrite("steps", &JobSpec::steps)
        .def_property(
            "transport",
            [](const JobSpec &s) { return std::string(transport::choiceName(s.transport)); },
            [](JobSpec &s, const std::string &name) { s.transport = engine::parseTransport(name); },
            "auto, ucx, cuda_ipc, inproc or filesystem.")
        .def_property(
            "transport_options", [](const JobSpec &s) { return s.transport_options.dump(); },
            [](JobSpec &s, const std::string &text) {
                s.transport_options = text.empty() ? nlohmann::json() : nlohmann::json::parse(text);
            },
            "Backend options as JSON text (e.g. '{\"transports\": \"posix,sysv,self\"}').")
        .def_property(
            "fs_config", [](const JobSpec &s) { return s.fs_config.dump(); },
            [](JobSpec &s, const std::string &text) {
                s.fs_config = text.empty() ? nlohmann::json() : nlohmann::json::parse(text);
            },
            "transport 'filesystem': a Hugging Face config.json (JSON text) written into every "
            "step directory.")
        .def_readwrite("fs_root", &JobSpec::fs_root,
                       "transport 'filesystem': the directory of the checkpoints (step_<N>/)")
        .def_readwrite("fs_keep", &JobSpec::fs_keep,
                       "transport 'filesystem': step directories kept after each commit")
        .def_readwrite("fs_file_bytes", &JobSpec::fs_file_bytes,
                       "transport 'filesystem': largest safetensors file (tensor bytes)")
        .def_readwrite("verify", &JobSpec::verify)
        .def_readwrite("pipeline", &JobSpec::pipeline,
                       "convert and write stage by stage, overlapped (False: convert everything, "
                       "then write everything, to measure each phase alone)")
        .def_readwrite("staging", &JobSpec::staging)
        .def_readwrite("checksum", &JobSpec::checksum)
        .def_readwrite("flip", &JobSpec::flip)
        .def_property(
            "init_timeout", [](const JobSpec &s) { return s.init_timeout.count() / 1000.0; },
            [](JobSpec &s, double v) { s.init_timeout = toMillis(v); }, "seconds")
        .def_property(
            "step_timeout", [](const JobSpec &s) { return s.step_timeout.count() / 1000.0; },
            [](JobSpec &s, double v) { s.step_timeout = toMillis(v); }, "seconds")
        .def("to_json", [](const JobSpec &s) { return s.toJson().dump(); })
        .def_static(
            "from_json", [](const std::string &text) { return JobSpec::parse(text); },
            py::arg("text"))
        .def("validate", [](const JobSpec &s) {
            // The checks fromJson applies, so a bad spec fails where it is written.
            (void)JobSpec::fromJson(s.toJson());
        });

    m.def(
        "publish_job",
        [](control::Store &store, const JobSpec &spec) {
            (void)JobSpec::fromJson(spec.toJson());
            store.set(engine::protocol::keys::spec(), spec.toJson().dump());
        },
        py::arg("store"), py::arg("spec"), py::call_guard<py::gil_scoped_release>(),
        "Publishes the job spec (the launcher's job; done once per job).");
    m.def(
        "read_job",
        [](control::Store &store, double timeout_s) {
            return JobSpec::parse(store.wait(engine::protocol::keys::spec(), toMillis(timeout_s)));
        },
        py::arg("store"), py::arg("timeout"), py::call_guard<py::gil_scoped_release>(),
        "Waits for the job spec and returns it.");
    m.def(
        "publish_init_refusal",
        [](control::Store &store, const std::string &who, const std::string &message) {
            store.set(engine::protocol::keys::initRefused(who), message);
        },
        py::arg("store"), py::arg("who"), py::arg("message"),
        py::call_guard<py::gil_scoped_release>(),
        "Records that participant `who` refused its own input before joining (it may retry); "
        "peers that time out waiting for it name this cause.");
    m.def(
        "clear_init_refusal",
        [](control::Store &store, const std::string &who) {
            store.erase(engine::protocol::keys::initRefused(who));
        },
        py::arg("store"), py::arg("who"), py::call_guard<py::gil_scoped_release>());
    m.def(
        "abort_version",
        [](std::shared_ptr<control::Store> store, uint64_t version, const std::string &who,
           const std::string &message, const std::string &code) {
            engine::protocol::Session session(std::move(store), who, {});
            (void)session.decide({version, false, who, control::wire::parseCode(code), message});
        },
        py::arg("store"), py::arg("version"), py::arg("who"), py::arg("message"),
        py::arg("code") = "invalid argument", py::call_guard<py::gil_scoped_release>(),
        "Fails version `version` for every participant (the first cause wins), as a participant "
        "that cannot take part in it does.");
    m.def(
        "fail_init",
        [](std::shared_ptr<control::Store> store, const std::string &who,
           const std::string &message, const std::string &code) {
            engine::protocol::Session session(std::move(store), who, {});
            session.failInit(control::wire::parseCode(code), message);
        },
        py::arg("store"), py::arg("who"), py::arg("message"), py::arg("code") = "invalid argument",
        py::call_guard<py::gil_scoped_release>(),
        "Fails the job's start-up for every agent (the first failure wins): for a mismatch no "
        "retry can fix, e.g. a model that does not match the job's layout.");
    m.def(
        "job_layout",
        [](const JobSpec &spec) {
            return std::make_shared<layout::Layout>(engine::jobLayout(spec));
        },
        py::arg("spec"),
        "The job's layout: the spec's own layout document, or the built-in / file `model`.");
    m.def("trainer_name", &engine::protocol::trainerName, py::arg("rank"));
    m.def("inference_name", &engine::protocol::inferenceName, py::arg("peer"));
}

}  // namespace weightsync::python
