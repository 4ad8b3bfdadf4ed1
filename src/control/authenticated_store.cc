#include "control/authenticated_store.h"

#include "common/error.h"

#include <charconv>

namespace weightsync::control {

namespace {

constexpr size_t kMacBytes = 32;

std::string macInput(const std::string &key, std::string_view value) {
    std::string input = "weightsync value\n";
    input.append(key).push_back('\0');
    input.append(value);
    return input;
}

}  // namespace

AuthenticatedStore::AuthenticatedStore(std::shared_ptr<const JobSecret> secret,
                                       std::shared_ptr<Store> inner)
    : secret_(std::move(secret)), inner_(std::move(inner)) {
    check(secret_ != nullptr && inner_ != nullptr, Errc::kInvalidArgument,
          "AuthenticatedStore needs a secret and a store");
}

std::string AuthenticatedStore::seal(const std::string &key, const std::string &value) const {
    return value + secret_->mac(macInput(key, value));
}

std::string AuthenticatedStore::open(const std::string &key, const std::string &stored) const {
    const bool ok =
        stored.size() >= kMacBytes &&
        secret_->verify(
            macInput(key, std::string_view(stored).substr(0, stored.size() - kMacBytes)),
            std::string_view(stored).substr(stored.size() - kMacBytes));
    check(ok, Errc::kUnauthenticated,
          "the value of '{}' carries no valid MAC of the job secret (forged, or written without "
          "the secret): refused",
          key);
    return stored.substr(0, stored.size() - kMacBytes);
}

std::vector<KeyValue> AuthenticatedStore::openAll(std::vector<KeyValue> entries) const {
    for (KeyValue &kv : entries) kv.value = open(kv.key, kv.value);
    return entries;
}

void AuthenticatedStore::set(const std::string &key, const std::string &value) {
    inner_->set(key, seal(key, value));
}

std::optional<std::string> AuthenticatedStore::get(const std::string &key) {
    auto stored = inner_->get(key);
    if (!stored) return std::nullopt;
    return open(key, *stored);
}

std::string AuthenticatedStore::wait(const std::string &key, std::chrono::milliseconds timeout) {
    return open(key, inner_->wait(key, timeout));
}

bool AuthenticatedStore::compareSet(const std::string &key,
                                    const std::optional<std::string> &expected,
                                    const std::string &desired) {
    std::optional<std::string> sealed;
    if (expected) sealed = seal(key, *expected);  // the MAC is deterministic
    return inner_->compareSet(key, sealed, seal(key, desired));
}

int64_t AuthenticatedStore::add(const std::string &key, int64_t delta) {
    for (;;) {
        const std::optional<std::string> stored = inner_->get(key);
        int64_t current = 0;
        if (stored) {
            const std::string text = open(key, *stored);
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), current);
            check(ec == std::errc() && end == text.data() + text.size(), Errc::kInvalidArgument,
                  "add on key '{}': current value '{}' is not an integer", key, text);
        }
        int64_t result = 0;
        check(!__builtin_add_overflow(current, delta, &result), Errc::kInvalidArgument,
              "add on key '{}' overflows ({} + {})", key, current, delta);
        if (inner_->compareSet(key, stored, seal(key, std::to_string(result)))) return result;
    }
}

std::vector<KeyValue> AuthenticatedStore::list(const std::string &prefix) {
    return openAll(inner_->list(prefix));
}

std::vector<KeyValue> AuthenticatedStore::watch(const std::string &prefix, uint64_t after_revision,
                                                std::chrono::milliseconds timeout) {
    return openAll(inner_->watch(prefix, after_revision, timeout));
}

void AuthenticatedStore::erase(const std::string &key) {
    inner_->erase(key);
}

size_t AuthenticatedStore::erasePrefix(const std::string &prefix) {
    return inner_->erasePrefix(prefix);
}

std::unique_ptr<LastWill> AuthenticatedStore::lastWill(const std::string &key,
                                                       const std::string &value,
                                                       std::chrono::milliseconds ttl) {
    return inner_->lastWill(key, seal(key, value), ttl);
}

}  // namespace weightsync::control
