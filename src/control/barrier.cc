#include "control/barrier.h"

#include "control/clock.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>

namespace weightsync::control {
namespace {

using std::chrono::milliseconds;

void checkRank(const char *what, const std::string &name, int world, int rank) {
    check(world >= 1, Errc::kInvalidArgument, "{} '{}': world size {} must be positive", what, name,
          world);
    check(rank >= 0 && rank < world, Errc::kInvalidArgument, "{} '{}': rank {} outside [0, {})",
          what, name, rank, world);
}

milliseconds remaining(Clock::time_point deadline) {
    if (deadline == kNoDeadline) return milliseconds::max();
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    return std::max(left, milliseconds(0));
}

/// Ranks in [0, world) that have no key "<prefix><rank>" in the store.
std::vector<int> missingRanks(Store &store, const std::string &prefix, int world) {
    std::vector<bool> arrived(static_cast<size_t>(world), false);
    for (const auto &entry : store.list(prefix)) {
        const std::string_view suffix = std::string_view(entry.key).substr(prefix.size());
        int rank = -1;
        const auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), rank);
        if (ec == std::errc() && end == suffix.data() + suffix.size() && rank >= 0 &&
            rank < world) {
            arrived[static_cast<size_t>(rank)] = true;
        }
    }
    std::vector<int> missing;
    for (int r = 0; r < world; ++r) {
        if (!arrived[static_cast<size_t>(r)]) missing.push_back(r);
    }
    return missing;
}

}  // namespace

std::string formatRanks(const std::vector<int> &ranks, size_t limit) {
    if (ranks.size() <= limit) return fmt::format("[{}]", fmt::join(ranks, ", "));
    const std::vector<int> head(ranks.begin(), ranks.begin() + static_cast<ptrdiff_t>(limit));
    return fmt::format("[{}, ... ({} more)]", fmt::join(head, ", "), ranks.size() - limit);
}

void barrier(Store &store, const std::string &name, int world, int rank, milliseconds timeout) {
    checkRank("barrier", name, world, rank);
    const auto deadline = deadlineAfter(timeout);
    const std::string rank_prefix = name + "/rank/";
    check(store.compareSet(rank_prefix + std::to_string(rank), std::nullopt, "1"), Errc::kProtocol,
          "rank {} entered barrier '{}' twice (barrier names are single-use; put the version in "
          "the name)",
          rank, name);
    const int64_t arrived = store.add(name + "/count", 1);
    check(arrived <= world, Errc::kProtocol,
          "barrier '{}' has {} arrivals for world size {} (name reused or world sizes disagree)",
          name, arrived, world);
    if (arrived == world) store.set(name + "/done", "1");
    try {
        store.wait(name + "/done", remaining(deadline));
    } catch (const Error &e) {
        if (e.code() != Errc::kTimeout) throw;
        const auto missing = missingRanks(store, rank_prefix, world);
        fail(Errc::kTimeout,
             "barrier '{}' timed out after {} ms: {} of {} arrived; missing ranks: {}", name,
             timeout.count(), world - static_cast<int>(missing.size()), world,
             formatRanks(missing));
    }
}

std::vector<std::string> waitAll(Store &store, const std::vector<std::string> &keys,
                                 milliseconds timeout) {
    const auto deadline = deadlineAfter(timeout);
    std::vector<std::string> values;
    values.reserve(keys.size());
    try {
        for (const auto &key : keys) values.push_back(store.wait(key, remaining(deadline)));
    } catch (const Error &e) {
        if (e.code() != Errc::kTimeout) throw;
        std::vector<std::string> missing;
        for (size_t i = values.size(); i < keys.size(); ++i) {
            if (!store.get(keys[i])) missing.push_back("'" + keys[i] + "'");
        }
        const size_t shown = std::min<size_t>(missing.size(), 16);
        fail(Errc::kTimeout, "timed out after {} ms waiting for {} of {} keys: [{}{}]",
             timeout.count(), missing.size(), keys.size(),
             fmt::join(missing.begin(), missing.begin() + static_cast<ptrdiff_t>(shown), ", "),
             shown < missing.size() ? ", ..." : "");
    }
    return values;
}

std::vector<std::string> allGather(Store &store, const std::string &name, int world, int rank,
                                   const std::string &payload, milliseconds timeout) {
    checkRank("all-gather", name, world, rank);
    const std::string prefix = name + "/";
    check(store.compareSet(prefix + std::to_string(rank), std::nullopt, payload), Errc::kProtocol,
          "rank {} published to all-gather '{}' twice (names are single-use)", rank, name);
    std::vector<std::string> keys;
    keys.reserve(static_cast<size_t>(world));
    for (int r = 0; r < world; ++r) keys.push_back(prefix + std::to_string(r));
    try {
        return waitAll(store, keys, timeout);
    } catch (const Error &e) {
        if (e.code() != Errc::kTimeout) throw;
        const auto missing = missingRanks(store, prefix, world);
        fail(Errc::kTimeout,
             "all-gather '{}' timed out after {} ms: {} of {} arrived; missing ranks: {}", name,
             timeout.count(), world - static_cast<int>(missing.size()), world,
             formatRanks(missing));
    }
}

}  // namespace weightsync::control
