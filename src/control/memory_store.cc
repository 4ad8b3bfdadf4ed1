#include "control/memory_store.h"

#include "control/clock.h"

#include <algorithm>
#include <charconv>

namespace weightsync::control {
namespace {

bool hasPrefix(const std::string &key, const std::string &prefix) {
    return key.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

template <typename Ready>
bool MemoryStore::blockUntil(std::unique_lock<std::mutex> &lock, std::chrono::milliseconds timeout,
                             Ready ready) {
    return changed_.wait_until(lock, deadlineAfter(timeout), ready);
}

void MemoryStore::writeLocked(const std::string &key, std::string value) {
    auto &entry = entries_[key];
    if (entry.revision != 0) by_revision_.erase(entry.revision);
    entry.value = std::move(value);
    entry.revision = ++revision_;
    by_revision_.emplace(entry.revision, key);
    changed_.notify_all();
    for (const auto &[id, listener] : listeners_) listener();
}

void MemoryStore::eraseLocked(std::map<std::string, Entry>::iterator it) {
    by_revision_.erase(it->second.revision);
    entries_.erase(it);
}

bool MemoryStore::hasNewerLocked(const std::string &prefix, uint64_t after_revision) const {
    for (auto it = by_revision_.upper_bound(after_revision); it != by_revision_.end(); ++it) {
        if (hasPrefix(it->second, prefix)) return true;
    }
    return false;
}

std::vector<KeyValue> MemoryStore::collectLocked(const std::string &prefix,
                                                 uint64_t after_revision) const {
    std::vector<KeyValue> out;
    if (after_revision == 0) {  // a listing: the keys under prefix, in key order
        for (auto it = entries_.lower_bound(prefix); it != entries_.end(); ++it) {
            if (!hasPrefix(it->first, prefix)) break;
            out.push_back({it->first, it->second.value, it->second.revision});
        }
        return out;
    }
    // What changed since after_revision, whatever the number of unchanged keys.
    for (auto it = by_revision_.upper_bound(after_revision); it != by_revision_.end(); ++it) {
        if (!hasPrefix(it->second, prefix)) continue;
        const Entry &e = entries_.at(it->second);
        out.push_back({it->second, e.value, e.revision});
    }
    std::sort(out.begin(), out.end(),
              [](const KeyValue &a, const KeyValue &b) { return a.key < b.key; });
    return out;
}

void MemoryStore::set(const std::string &key, const std::string &value) {
    std::lock_guard lock(mutex_);
    writeLocked(key, value);
}

std::optional<std::string> MemoryStore::get(const std::string &key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    return it->second.value;
}

std::string MemoryStore::wait(const std::string &key, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const bool found = blockUntil(lock, timeout, [&] { return entries_.count(key) != 0; });
    check(found, Errc::kTimeout, "wait for key '{}' timed out after {} ms", key, timeout.count());
    return entries_.at(key).value;
}

bool MemoryStore::compareSet(const std::string &key, const std::optional<std::string> &expected,
                             const std::string &desired) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    const bool matches = expected.has_value()
                             ? (it != entries_.end() && it->second.value == *expected)
                             : it == entries_.end();
    if (matches) writeLocked(key, desired);
    return matches;
}

int64_t MemoryStore::add(const std::string &key, int64_t delta) {
    std::lock_guard lock(mutex_);
    int64_t current = 0;
    auto it = entries_.find(key);
    if (it != entries_.end()) {
        const std::string &text = it->second.value;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), current);
        check(ec == std::errc() && end == text.data() + text.size(), Errc::kInvalidArgument,
              "add on key '{}': current value '{}' is not an integer", key, text);
    }
    int64_t result = 0;
    check(!__builtin_add_overflow(current, delta, &result), Errc::kInvalidArgument,
          "add on key '{}' overflows ({} + {})", key, current, delta);
    writeLocked(key, std::to_string(result));
    return result;
}

std::vector<KeyValue> MemoryStore::list(const std::string &prefix) {
    std::lock_guard lock(mutex_);
    return collectLocked(prefix, 0);
}

std::vector<KeyValue> MemoryStore::watch(const std::string &prefix, uint64_t after_revision,
                                         std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const bool ready =
        blockUntil(lock, timeout, [&] { return hasNewerLocked(prefix, after_revision); });
    check(ready, Errc::kTimeout, "watch on prefix '{}' after revision {} timed out after {} ms",
          prefix, after_revision, timeout.count());
    return collectLocked(prefix, after_revision);
}

std::vector<KeyValue> MemoryStore::changedSince(const std::string &prefix,
                                                uint64_t after_revision) const {
    std::lock_guard lock(mutex_);
    if (!hasNewerLocked(prefix, after_revision)) return {};
    return collectLocked(prefix, after_revision);
}

uint64_t MemoryStore::addWriteListener(WriteListener listener) {
    std::lock_guard lock(mutex_);
    const uint64_t id = next_listener_++;
    listeners_.emplace(id, std::move(listener));
    return id;
}

void MemoryStore::removeWriteListener(uint64_t id) {
    std::lock_guard lock(mutex_);
    listeners_.erase(id);
}

void MemoryStore::erase(const std::string &key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    eraseLocked(it);
    ++revision_;  // erasures wake nobody: watch reports writes
}

size_t MemoryStore::erasePrefix(const std::string &prefix) {
    std::lock_guard lock(mutex_);
    size_t erased = 0;
    for (auto it = entries_.lower_bound(prefix);
         it != entries_.end() && hasPrefix(it->first, prefix);) {
        eraseLocked(it++);
        ++erased;
    }
    if (erased != 0) ++revision_;
    return erased;
}

namespace {
class HeldWill : public LastWill {
  public:
    void withdraw() override {}
    [[nodiscard]] bool held() const override { return true; }
};
}  // namespace

std::unique_ptr<LastWill> MemoryStore::lastWill(const std::string & /*key*/,
                                                const std::string & /*value*/,
                                                std::chrono::milliseconds /*ttl*/) {
    return std::make_unique<HeldWill>();
}

uint64_t MemoryStore::revision() const {
    std::lock_guard lock(mutex_);
    return revision_;
}

}  // namespace weightsync::control
