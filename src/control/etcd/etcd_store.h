#pragma once
// control::Store on etcd (v3 API, through etcd's JSON gateway over libcurl; docs/control-store.md
// says why). Keys live under "<root>/kv/" in etcd; revisions are etcd's (cluster-wide, one per
// put, transaction or delete); compareSet and add are transactions; wait and watch block on
// etcd watch streams. Last wills are etcd leases with keep-alive (etcd_will.h).
//
// Thread-safe: every call takes an HTTP connection of its own from a small pool, so a call
// blocked in wait/watch never delays another. When etcd cannot be reached, calls throw
// Errc::kPeerLost naming the endpoints.

#include "control/store.h"

#include <nlohmann/json_fwd.hpp>

#include <mutex>

namespace weightsync::control::etcd {

class HttpClient;
class WillExecutor;

struct EtcdOptions {
    std::vector<std::string> endpoints;  // "host:port" each, tried in order
    std::string root = "weightsync";     // namespace of this store's keys in etcd
    /// The first contact retries (etcd may start a moment later) until this has passed.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    /// Bound of a call that does not block (and added to a blocking call's own timeout).
    std::chrono::milliseconds request_timeout = std::chrono::seconds(10);
    /// Run the executor of other processes' wills (lost/<who> when a lease expires).
    bool execute_wills = true;
};

/// Whether address names an etcd cluster ("etcd://...").
bool isEtcdAddress(const std::string &address);
/// Parses "etcd://host:port[,host:port...][/root]". Throws kInvalidArgument naming the problem.
EtcdOptions parseEtcdAddress(const std::string &address);

class EtcdStore : public Store {
  public:
    explicit EtcdStore(EtcdOptions options);
    ~EtcdStore() override;
    EtcdStore(const EtcdStore &) = delete;
    EtcdStore &operator=(const EtcdStore &) = delete;

    void set(const std::string &key, const std::string &value) override;
    std::optional<std::string> get(const std::string &key) override;
    std::string wait(const std::string &key, std::chrono::milliseconds timeout) override;
    bool compareSet(const std::string &key, const std::optional<std::string> &expected,
                    const std::string &desired) override;
    int64_t add(const std::string &key, int64_t delta) override;
    std::vector<KeyValue> list(const std::string &prefix) override;
    std::vector<KeyValue> watch(const std::string &prefix, uint64_t after_revision,
                                std::chrono::milliseconds timeout) override;
    void erase(const std::string &key) override;
    size_t erasePrefix(const std::string &prefix) override;
    /// An etcd lease (TTL = ttl rounded up to whole seconds, at least etcd's minimum of 2 s)
    /// kept alive from a thread of its own, holding a will record; see etcd_will.h.
    std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                       std::chrono::milliseconds ttl) override;

    [[nodiscard]] const EtcdOptions &options() const { return options_; }

  private:
    class Connection;  // a pooled HttpClient, returned on destruction
    Connection connection();
    /// POSTs request to path and returns the reply, throwing etcd's error as a weightsync::Error.
    nlohmann::json call(const std::string &path, const nlohmann::json &request);
    /// Entries under the etcd key range [key, range_end) with mod_revision > after, and the
    /// store revision of the answer.
    std::pair<std::vector<KeyValue>, uint64_t> range(const std::string &key,
                                                     const std::string &range_end,
                                                     uint64_t after = 0);
    /// Blocks on a watch stream of [key, range_end) until range(key, range_end, after) has
    /// entries (returns them) or deadline passes (returns none).
    std::vector<KeyValue> await(const std::string &key, const std::string &range_end,
                                uint64_t after, std::chrono::steady_clock::time_point deadline);
    [[nodiscard]] std::string full(const std::string &key) const { return data_ + key; }

    EtcdOptions options_;
    std::string data_;  // "<root>/kv/"
    std::mutex mutex_;
    std::vector<std::unique_ptr<HttpClient>> idle_;
    std::unique_ptr<WillExecutor> executor_;
};

}  // namespace weightsync::control::etcd
