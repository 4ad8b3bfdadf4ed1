#include "engine/agent_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <fmt/format.h>

#include <array>
#include <map>

namespace weightsync::engine {

namespace {

constexpr std::array<Phase, 6> kPhases = {Phase::kConvert, Phase::kPost, Phase::kDrain,
                                          Phase::kBarrier, Phase::kHook, Phase::kPause};

const char *phaseName(Phase phase) {
    switch (phase) {
        case Phase::kConvert: return "convert";
        case Phase::kPost: return "post";
        case Phase::kDrain: return "drain";
        case Phase::kBarrier: return "barrier";
        case Phase::kHook: return "hook";
        case Phase::kPause: return "pause";
    }
    return "?";
}

constexpr std::array<Errc, 12> kErrcs = {
    Errc::kInvalidArgument, Errc::kNotFound,        Errc::kMismatch,
    Errc::kUnsupported,     Errc::kTimeout,         Errc::kPeerLost,
    Errc::kTransport,       Errc::kProtocol,        Errc::kIo,
    Errc::kCorruption,      Errc::kUnauthenticated, Errc::kInternal};

/// Seconds from 1 ms to 2 minutes.
prometheus::Histogram::BucketBoundaries secondsBuckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};
}

}  // namespace

struct AgentMetrics::Families {
    prometheus::Counter *versions_pushed = nullptr;
    prometheus::Counter *versions_received = nullptr;
    prometheus::Gauge *version_held = nullptr;
    prometheus::Counter *bytes_written = nullptr;
    prometheus::Counter *bytes_received = nullptr;
    prometheus::Gauge *registered_bytes = nullptr;
    prometheus::Gauge *slot_arena_bytes = nullptr;
    std::map<Phase, prometheus::Histogram *> phases;
    std::map<Errc, prometheus::Counter *> failures;
};

AgentMetrics::AgentMetrics(const std::string &role, const std::string &agent)
    : registry_(std::make_shared<prometheus::Registry>()), f_(std::make_unique<Families>()) {
    const std::map<std::string, std::string> labels = {{"role", role}, {"agent", agent}};
    auto &r = *registry_;
    const auto counter = [&](const char *name, const char *help) {
        return &prometheus::BuildCounter().Name(name).Help(help).Labels(labels).Register(r).Add({});
    };
    const auto gauge = [&](const char *name, const char *help) {
        return &prometheus::BuildGauge().Name(name).Help(help).Labels(labels).Register(r).Add({});
    };
    f_->versions_pushed = counter("weightsync_versions_pushed_total",
                                  "Weight versions this trainer pushed (committed)");
    f_->versions_received = counter("weightsync_versions_received_total",
                                    "Weight versions this inference rank received (committed)");
    f_->version_held = gauge("weightsync_version_held", "The weight version this agent holds");
    f_->bytes_written =
        counter("weightsync_bytes_written_total", "Bytes this trainer wrote to inference ranks");
    f_->bytes_received = counter("weightsync_bytes_received_total",
                                 "Bytes written into this inference rank's weights");
    f_->registered_bytes =
        gauge("weightsync_registered_bytes", "Memory this agent registered with its transports");
    f_->slot_arena_bytes =
        gauge("weightsync_slot_arena_bytes", "This trainer's slot arena (what weightsync adds)");
    auto &phases = prometheus::BuildHistogram()
                       .Name("weightsync_phase_seconds")
                       .Help("Seconds per version and phase")
                       .Labels(labels)
                       .Register(r);
    for (Phase p : kPhases)
        f_->phases[p] = &phases.Add({{"phase", phaseName(p)}}, secondsBuckets());
    auto &failures = prometheus::BuildCounter()
                         .Name("weightsync_failures_total")
                         .Help("Failed versions and start-ups, by kind")
                         .Labels(labels)
                         .Register(r);
    for (Errc e : kErrcs) f_->failures[e] = &failures.Add({{"kind", std::string(errcName(e))}});
}

AgentMetrics::~AgentMetrics() = default;

void AgentMetrics::pushed(const PushMetrics &m) {
    f_->versions_pushed->Increment();
    f_->version_held->Set(static_cast<double>(m.version));
    f_->bytes_written->Increment(static_cast<double>(m.wire_bytes));
    f_->phases.at(Phase::kConvert)->Observe(m.convert_seconds);
    f_->phases.at(Phase::kPost)->Observe(m.post_seconds);
    f_->phases.at(Phase::kDrain)->Observe(m.drain_seconds);
    f_->phases.at(Phase::kBarrier)->Observe(m.barrier_seconds);
    f_->phases.at(Phase::kPause)->Observe(m.pause_seconds);
}

void AgentMetrics::received(uint64_t version, bool committed, int64_t bytes, double pause_seconds,
                            double hook_seconds) {
    f_->bytes_received->Increment(static_cast<double>(bytes));
    f_->phases.at(Phase::kPause)->Observe(pause_seconds);
    f_->phases.at(Phase::kHook)->Observe(hook_seconds);
    if (!committed) return;
    f_->versions_received->Increment();
    f_->version_held->Set(static_cast<double>(version));
}

void AgentMetrics::failed(Errc kind) {
    f_->failures.at(kind)->Increment();
}

void AgentMetrics::setRegisteredBytes(int64_t bytes) {
    f_->registered_bytes->Set(static_cast<double>(bytes));
}

void AgentMetrics::setSlotArenaBytes(int64_t bytes) {
    f_->slot_arena_bytes->Set(static_cast<double>(bytes));
}

std::string AgentMetrics::text() const {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
}

nlohmann::json AgentMetrics::snapshot() const {
    const auto whole = [](double v) { return static_cast<int64_t>(v); };
    nlohmann::json out = {{"versions_pushed", whole(f_->versions_pushed->Value())},
                          {"versions_received", whole(f_->versions_received->Value())},
                          {"version_held", whole(f_->version_held->Value())},
                          {"bytes_written", whole(f_->bytes_written->Value())},
                          {"bytes_received", whole(f_->bytes_received->Value())},
                          {"registered_bytes", whole(f_->registered_bytes->Value())},
                          {"slot_arena_bytes", whole(f_->slot_arena_bytes->Value())}};
    nlohmann::json failures = nlohmann::json::object();
    for (const auto &[kind, counter] : f_->failures) {
        failures[std::string(errcName(kind))] = whole(counter->Value());
    }
    out["failures"] = std::move(failures);
    nlohmann::json phases = nlohmann::json::object();
    for (const auto &[phase, histogram] : f_->phases) {
        const prometheus::ClientMetric m = histogram->Collect();
        phases[phaseName(phase)] = {{"count", m.histogram.sample_count},
                                    {"sum", m.histogram.sample_sum}};
    }
    out["phases"] = std::move(phases);
    return out;
}

const std::shared_ptr<prometheus::Registry> &AgentMetrics::registry() const {
    return registry_;
}

struct MetricsServer::Impl {
    std::unique_ptr<prometheus::Exposer> exposer;
};

MetricsServer::MetricsServer(std::shared_ptr<AgentMetrics> metrics, const std::string &host,
                             int port)
    : metrics_(std::move(metrics)), impl_(std::make_unique<Impl>()) {
    check(metrics_ != nullptr, Errc::kInvalidArgument, "MetricsServer without metrics");
    check(port >= 0 && port <= 65535, Errc::kInvalidArgument, "metrics port {} out of range", port);
    const std::string address = fmt::format("{}:{}", host, port);
    try {
        impl_->exposer = std::make_unique<prometheus::Exposer>(address, 1);
    } catch (const std::exception &e) {
        fail(Errc::kIo, "cannot serve metrics on {}: {}", address, e.what());
    }
    impl_->exposer->RegisterCollectable(metrics_->registry());
    const std::vector<int> ports = impl_->exposer->GetListeningPorts();
    check(!ports.empty(), Errc::kIo, "metrics server on {} listens on no port", address);
    port_ = ports.front();
}

MetricsServer::~MetricsServer() = default;

}  // namespace weightsync::engine
