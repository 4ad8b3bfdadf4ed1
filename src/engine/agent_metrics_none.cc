// AgentMetrics in a build without prometheus-cpp: every constructor refuses (kUnsupported), so
// the agents, which only record into one they were given, count nothing.
#include "engine/agent_metrics.h"

namespace weightsync::engine {

struct AgentMetrics::Families {};

AgentMetrics::AgentMetrics(const std::string & /*role*/, const std::string & /*agent*/) {
    fail(Errc::kUnsupported, "this build has no Prometheus metrics (prometheus-cpp-dev missing)");
}
AgentMetrics::~AgentMetrics() = default;
void AgentMetrics::pushed(const PushMetrics & /*m*/) {}
void AgentMetrics::received(uint64_t /*version*/, bool /*committed*/, int64_t /*bytes*/,
                            double /*pause_seconds*/, double /*hook_seconds*/) {}
void AgentMetrics::failed(Errc /*kind*/) {}
void AgentMetrics::setRegisteredBytes(int64_t /*bytes*/) {}
void AgentMetrics::setSlotArenaBytes(int64_t /*bytes*/) {}
std::string AgentMetrics::text() const {
    return {};
}
nlohmann::json AgentMetrics::snapshot() const {
    return nlohmann::json::object();
}
const std::shared_ptr<prometheus::Registry> &AgentMetrics::registry() const {
    return registry_;
}

struct MetricsServer::Impl {};

MetricsServer::MetricsServer(std::shared_ptr<AgentMetrics> metrics, const std::string & /*host*/,
                             int /*port*/)
    : metrics_(std::move(metrics)) {
    fail(Errc::kUnsupported, "this build has no Prometheus metrics (prometheus-cpp-dev missing)");
}
MetricsServer::~MetricsServer() = default;

}  // namespace weightsync::engine
