#pragma once
// Every value of a job MAC'd with the job secret (docs/security.md): writes append
// HMAC-SHA256(secret, key, value) to the value, reads check and strip it. A value without a valid
// MAC (written by someone without the secret: a forged descriptor, address or remote key, or a
// value moved from another key) is refused with Errc::kUnauthenticated naming its key, before
// the caller sees it. Works over any Store (the coordinator, etcd); wrap the job's namespace.

#include "control/auth.h"
#include "control/store.h"

#include <memory>

namespace weightsync::control {

class AuthenticatedStore : public Store {
  public:
    AuthenticatedStore(std::shared_ptr<const JobSecret> secret, std::shared_ptr<Store> inner);

    void set(const std::string &key, const std::string &value) override;
    std::optional<std::string> get(const std::string &key) override;
    std::string wait(const std::string &key, std::chrono::milliseconds timeout) override;
    bool compareSet(const std::string &key, const std::optional<std::string> &expected,
                    const std::string &desired) override;
    /// A read and a compareSet of the sealed values, retried on conflict.
    int64_t add(const std::string &key, int64_t delta) override;
    std::vector<KeyValue> list(const std::string &prefix) override;
    std::vector<KeyValue> watch(const std::string &prefix, uint64_t after_revision,
                                std::chrono::milliseconds timeout) override;
    void erase(const std::string &key) override;
    size_t erasePrefix(const std::string &prefix) override;
    std::unique_ptr<LastWill> lastWill(const std::string &key, const std::string &value,
                                       std::chrono::milliseconds ttl) override;

    /// value with its MAC under key (what is stored).
    [[nodiscard]] std::string seal(const std::string &key, const std::string &value) const;
    /// The value of a stored one; throws kUnauthenticated unless its MAC is valid for key.
    [[nodiscard]] std::string open(const std::string &key, const std::string &stored) const;

  private:
    std::vector<KeyValue> openAll(std::vector<KeyValue> entries) const;

    std::shared_ptr<const JobSecret> secret_;
    std::shared_ptr<Store> inner_;
};

}  // namespace weightsync::control
