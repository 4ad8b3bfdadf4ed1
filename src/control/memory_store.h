#pragma once
// In-process Store: one mutex, one condition variable, a store-wide revision counter that every
// mutation (set, successful compareSet, add, erase) bumps. TcpStoreServer serves one of these.

#include "control/store.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

namespace weightsync::control {

class MemoryStore : public Store {
  public:
    /// Polled while blocked; returning true abandons the wait with Errc::kPeerLost.
    using CancelFn = std::function<bool()>;

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
    /// In one process nothing can die apart from the store: the will is held and never executed.
    std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                       std::chrono::milliseconds ttl) override;

    /// wait/watch that also give up when cancelled() turns true (checked every ~50 ms).
    std::string waitCancellable(const std::string &key, std::chrono::milliseconds timeout,
                                const CancelFn &cancelled);
    std::vector<KeyValue> watchCancellable(const std::string &prefix, uint64_t after_revision,
                                           std::chrono::milliseconds timeout,
                                           const CancelFn &cancelled);

    /// The revision of the latest mutation (0 for a fresh store).
    uint64_t revision() const;

  private:
    struct Entry {
        std::string value;
        uint64_t revision = 0;
    };

    /// Waits (lock held) until ready() or the deadline/cancellation; true when ready.
    template <typename Ready>
    bool blockUntil(std::unique_lock<std::mutex> &lock, std::chrono::milliseconds timeout,
                    const CancelFn &cancelled, Ready ready);
    void writeLocked(const std::string &key, std::string value);
    void eraseLocked(std::map<std::string, Entry>::iterator it);
    bool hasNewerLocked(const std::string &prefix, uint64_t after_revision) const;
    std::vector<KeyValue> collectLocked(const std::string &prefix, uint64_t after_revision) const;

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::string, Entry> entries_;
    /// Every key by the revision of its last write: a watch after revision r visits only what
    /// changed since r, however many keys the store holds.
    std::map<uint64_t, std::string> by_revision_;
    uint64_t revision_ = 0;
};

}  // namespace weightsync::control
