#pragma once
// What an agent counts for Prometheus (prometheus-cpp, Debian's prometheus-cpp-dev): versions
// pushed or received and the version held, per-phase seconds as histograms, bytes written or
// received, failures by kind, registered and slot-arena bytes. The agents record into an
// AgentMetrics when given one (useMetrics); a MetricsServer serves it as /metrics in the
// Prometheus text format; snapshot() gives the same numbers to the Python package.

#include "common/error.h"
#include "engine/metrics.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace weightsync::engine {

/// The phases timed per version: the trainers' convert, post, drain, barrier and pause (waiting
/// for the receivers to pause), the receivers' pause (paused until every writer was done) and
/// hook (post-update hooks).
enum class Phase { kConvert, kPost, kDrain, kBarrier, kHook, kPause };

class AgentMetrics {
  public:
    /// role: "trainer" or "inference"; agent: e.g. "trainer0", "e0r1". Both become labels.
    AgentMetrics(const std::string &role, const std::string &agent);
    ~AgentMetrics();
    AgentMetrics(const AgentMetrics &) = delete;
    AgentMetrics &operator=(const AgentMetrics &) = delete;

    /// A version this trainer pushed and that committed: its phases and bytes.
    void pushed(const PushMetrics &m);
    /// A version this inference rank received; committed or not, with its phases.
    void received(uint64_t version, bool committed, int64_t bytes, double pause_seconds,
                  double hook_seconds);
    /// A failed version (or start-up), by kind (the Errc's name: "timeout", "peer lost", ...).
    void failed(Errc kind);
    void setRegisteredBytes(int64_t bytes);
    void setSlotArenaBytes(int64_t bytes);

    /// The exposition, as /metrics serves it.
    [[nodiscard]] std::string text() const;
    /// The same numbers as JSON: versions_pushed, versions_received, version_held,
    /// bytes_written, bytes_received, registered_bytes, slot_arena_bytes,
    /// failures {kind: n}, phases {phase: {count, sum}}.
    [[nodiscard]] nlohmann::json snapshot() const;
    [[nodiscard]] const std::shared_ptr<prometheus::Registry> &registry() const;

  private:
    struct Families;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<Families> f_;
};

/// The key under which an agent that serves /metrics publishes "host:port" in its job's
/// namespace (who: "trainer0", "inference-e0r1").
inline std::string metricsKey(const std::string &who) {
    return "metrics/" + who;
}

/// Serves an AgentMetrics at http://host:port/metrics (port 0: any free port) until destroyed.
class MetricsServer {
  public:
    MetricsServer(std::shared_ptr<AgentMetrics> metrics, const std::string &host, int port);
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;
    [[nodiscard]] int port() const { return port_; }

  private:
    struct Impl;  // the HTTP server (prometheus-cpp's Exposer)
    std::shared_ptr<AgentMetrics> metrics_;
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
};

}  // namespace weightsync::engine
