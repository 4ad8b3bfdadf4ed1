#pragma once
// The control plane's key-value store. The embedded implementation is served by the coordinator
// process over TCP (TcpStoreServer / TcpStoreClient); etcd can plug in behind the same interface.
// Every wait has a timeout. A client whose server disappears throws Errc::kPeerLost on every call.

#include "common/error.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace weightsync::control {

struct KeyValue {
    std::string key;
    std::string value;
    uint64_t revision = 0;  // store-wide revision at which this value was written
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
};

}  // namespace weightsync::control
