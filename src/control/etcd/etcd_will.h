#pragma once
// Last wills on etcd. A will is an etcd lease plus a record "<root>/wills/<lease>" attached to
// it, holding the will's key and value. The owner keeps the lease alive (a keep-alive every
// third of its TTL). When the owner dies or hangs, etcd expires the lease and deletes the
// record; every EtcdStore of the cluster runs a WillExecutor that watches the records and, on
// such a delete, writes the will's key (lost/<who>). Exactly one writer wins, and a withdrawn
// will is never executed: withdrawing and executing are both transactions that create
// "<root>/wills-done/<lease>" iff it does not exist yet. The owner's transaction also deletes the
// record and attaches the marker to the lease, so revoking the lease leaves nothing behind; an
// executor that sees a record deleted reads the marker at the revision of that delete (settled
// by the owner) before it writes. Only a lease that expired leaves its marker (one key per loss).

#include "control/etcd/etcd_store.h"

#include <atomic>
#include <condition_variable>
#include <thread>

namespace weightsync::control::etcd {

class EtcdLastWill : public LastWill {
  public:
    /// key is the will's full etcd key. Grants the lease (TTL = ttl rounded up to seconds, at
    /// least 2 s) and writes the record; throws if etcd refuses.
    EtcdLastWill(const EtcdOptions &options, std::string key, std::string value,
                 std::chrono::milliseconds ttl);
    /// Without withdraw(): executes the will itself (a process that exits on an error is gone),
    /// then revokes the lease.
    ~EtcdLastWill() override;
    EtcdLastWill(const EtcdLastWill &) = delete;
    EtcdLastWill &operator=(const EtcdLastWill &) = delete;

    void withdraw() override;
    [[nodiscard]] bool held() const override { return held_; }
    [[nodiscard]] int64_t lease() const { return lease_; }
    [[nodiscard]] int64_t leaseTtlSeconds() const { return ttl_seconds_; }

  private:
    void keepAliveLoop();
    void stopKeepAlive();
    /// The transaction that settles the will once: creates the done marker iff absent, with the
    /// given operations. Returns whether it won.
    bool settle(const std::string &how, bool execute);

    EtcdOptions options_;
    std::string key_;
    std::string value_;
    std::unique_ptr<HttpClient> client_;            // grant, settle, revoke
    std::unique_ptr<HttpClient> keepalive_client_;  // the keep-alive thread's
    int64_t lease_ = 0;
    int64_t ttl_seconds_ = 0;
    std::atomic<bool> held_{true};
    bool settled_ = false;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

/// Executes the wills of processes whose lease expired (see above), from a thread of its own.
class WillExecutor {
  public:
    explicit WillExecutor(const EtcdOptions &options);
    ~WillExecutor();
    WillExecutor(const WillExecutor &) = delete;
    WillExecutor &operator=(const WillExecutor &) = delete;

  private:
    void run();
    /// The record of a will was deleted at revision deleted_at: writes the will unless its owner
    /// settled it in that same transaction.
    void execute(const std::string &record_key, const std::string &record, uint64_t deleted_at);

    EtcdOptions options_;
    std::unique_ptr<HttpClient> stream_;  // the watch stream
    std::unique_ptr<HttpClient> writer_;  // the transactions
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

/// "<root>/wills/" and "<root>/wills-done/".
std::string willsPrefix(const std::string &root);
std::string willsDonePrefix(const std::string &root);

}  // namespace weightsync::control::etcd
