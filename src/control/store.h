#pragma once
// The control plane's key-value store. The embedded implementation is served by the coordinator
// process over TCP (TcpStoreServer / TcpStoreClient); etcd can plug in behind the same interface.
// Every wait has a timeout. A client whose server disappears throws Errc::kPeerLost on every call.

#include "common/error.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weightsync::control {

struct KeyValue {
    std::string key;
    std::string value;
    uint64_t revision = 0;  // store-wide revision at which this value was written
};

/// A process's "last will": while it is held, the store sets the will's key to its value as soon
/// as the process is gone (its connection to the store closed, or no keep-alive arrived within
/// the will's ttl: a stopped or hung process). Only withdraw() takes it back: destroying the
/// object without it (an exit on an error, a crash) executes the will.
class LastWill {
  public:
    virtual ~LastWill() = default;
    /// Takes the will back (a clean departure is not a loss). Best effort.
    virtual void withdraw() = 0;
    /// False once the store has declared this process gone and executed the will (e.g. after it
    /// was stopped for longer than the ttl): peers treat it as lost from then on.
    [[nodiscard]] virtual bool held() const = 0;
};

class Store {
  public:
    virtual ~Store() = default;

    virtual void set(const std::string &key, const std::string &value) = 0;
    virtual std::optional<std::string> get(const std::string &key) = 0;
    /// Blocks until key exists, returns its value; Errc::kTimeout after timeout.
    virtual std::string wait(const std::string &key, std::chrono::milliseconds timeout) = 0;
    /// Sets key to desired iff its current value equals expected (nullopt = key absent).
    /// Returns true on success.
    virtual bool compareSet(const std::string &key, const std::optional<std::string> &expected,
                            const std::string &desired) = 0;
    /// Atomically adds delta to an integer counter (absent = 0) and returns the new value.
    virtual int64_t add(const std::string &key, int64_t delta) = 0;
    /// All keys under prefix, sorted by key.
    virtual std::vector<KeyValue> list(const std::string &prefix) = 0;
    /// Blocks until some key under prefix is written with revision > after_revision, then
    /// returns those entries (sorted by key). Errc::kTimeout after timeout.
    virtual std::vector<KeyValue> watch(const std::string &prefix, uint64_t after_revision,
                                        std::chrono::milliseconds timeout) = 0;
    virtual void erase(const std::string &key) = 0;
    /// Erases every key under prefix; returns how many were erased.
    virtual size_t erasePrefix(const std::string &prefix) = 0;
    /// Registers this process's last will (see LastWill). ttl bounds how long the process may go
    /// without a keep-alive; implementations send keep-alives themselves.
    virtual std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                               std::chrono::milliseconds ttl) = 0;
};

}  // namespace weightsync::control
