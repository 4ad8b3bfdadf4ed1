#pragma once
// Namespacing decorator (gloo/c10d style): every key becomes "<prefix>/<key>" in the inner store,
// so one coordinator can serve several jobs. Keys returned by list/watch have the prefix removed.

#include "control/store.h"

#include <memory>

namespace weightsync::control {

class PrefixStore : public Store {
  public:
    /// prefix must be non-empty; the separator "/" is added here.
    PrefixStore(std::string prefix, std::shared_ptr<Store> inner);

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
    std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                       std::chrono::milliseconds ttl) override;

    /// "<prefix>/" as applied to keys.
    [[nodiscard]] const std::string &prefix() const { return prefix_; }
    [[nodiscard]] const std::shared_ptr<Store> &inner() const { return inner_; }

  private:
    std::string full(const std::string &key) const { return prefix_ + key; }
    std::vector<KeyValue> strip(std::vector<KeyValue> entries) const;

    std::string prefix_;
    std::shared_ptr<Store> inner_;
};

}  // namespace weightsync::control
