#pragma once
// In-process Store: one mutex, one condition variable, a store-wide revision counter that every
// mutation (set, successful compareSet, add, erase) bumps. TcpStoreServer serves one of these;
// it answers blocking calls without blocking (changedSince, get) and learns of writes made by
// other users of the same store through a write listener.

#include "control/store.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

namespace weightsync::control {

class MemoryStore : public Store {
  public:
    /// Called after every write, with the store's lock held: it must be quick and must not use
    /// the store.
    using WriteListener = std::function<void()>;

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

    /// What watch(prefix, after_revision) would return now; empty when it would block.
    std::vector<KeyValue> changedSince(const std::string &prefix, uint64_t after_revision) const;

    /// Registers a listener for writes; returns the id that removes it.
    uint64_t addWriteListener(WriteListener listener);
    void removeWriteListener(uint64_t id);

    /// The revision of the latest mutation (0 for a fresh store).
    uint64_t revision() const;

  private:
    struct Entry {
        std::string value;
        uint64_t revision = 0;
    };

    /// Waits (lock held) until ready() or the deadline; true when ready.
    template <typename Ready>
    bool blockUntil(std::unique_lock<std::mutex> &lock, std::chrono::milliseconds timeout,
                    Ready ready);
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
    std::map<uint64_t, WriteListener> listeners_;
    uint64_t next_listener_ = 1;
};

}  // namespace weightsync::control
