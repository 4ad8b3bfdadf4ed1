#include "control/prefix_store.h"

namespace weightsync::control {

PrefixStore::PrefixStore(std::string prefix, std::shared_ptr<Store> inner)
    : prefix_(std::move(prefix) + "/"), inner_(std::move(inner)) {
    check(prefix_.size() > 1, Errc::kInvalidArgument, "PrefixStore needs a non-empty prefix");
    check(inner_ != nullptr, Errc::kInvalidArgument, "PrefixStore '{}' has no inner store",
          prefix_);
}

std::vector<KeyValue> PrefixStore::strip(std::vector<KeyValue> entries) const {
    for (auto &entry : entries) entry.key.erase(0, prefix_.size());
    return entries;
}

void PrefixStore::set(const std::string &key, const std::string &value) {
    inner_->set(full(key), value);
}

std::optional<std::string> PrefixStore::get(const std::string &key) {
    return inner_->get(full(key));
}

std::string PrefixStore::wait(const std::string &key, std::chrono::milliseconds timeout) {
    return inner_->wait(full(key), timeout);
}

bool PrefixStore::compareSet(const std::string &key, const std::optional<std::string> &expected,
                             const std::string &desired) {
    return inner_->compareSet(full(key), expected, desired);
}

int64_t PrefixStore::add(const std::string &key, int64_t delta) {
    return inner_->add(full(key), delta);
}

std::vector<KeyValue> PrefixStore::list(const std::string &prefix) {
    return strip(inner_->list(full(prefix)));
}

std::vector<KeyValue> PrefixStore::watch(const std::string &prefix, uint64_t after_revision,
                                         std::chrono::milliseconds timeout) {
    return strip(inner_->watch(full(prefix), after_revision, timeout));
}

void PrefixStore::erase(const std::string &key) {
    inner_->erase(full(key));
}

size_t PrefixStore::erasePrefix(const std::string &prefix) {
    return inner_->erasePrefix(full(prefix));
}

std::unique_ptr<LastWill> PrefixStore::lastWill(const std::string &key, const std::string &value,
                                                std::chrono::milliseconds ttl) {
    return inner_->lastWill(full(key), value, ttl);
}

}  // namespace weightsync::control
