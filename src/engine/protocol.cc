#include "engine/protocol.h"

#include "common/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace weightsync::engine {

namespace keys {
std::string spec() {
    return "spec";
}
std::string trainerHello(int rank) {
    return fmt::format("init/trainer/{}", rank);
}
std::string inferenceHello(const std::string &peer) {
    return "init/inference/" + peer;
}
std::string memory(const std::string &peer) {
    return "init/memory/" + peer;
}
std::string trainerReady(int rank) {
    return fmt::format("init/ready/{}", rank);
}
std::string initFailed() {
    return "init/failed";
}
std::string stepPrefix(uint64_t version) {
    return fmt::format("step/{}/", version);
}
std::string request(uint64_t version) {
    return fmt::format("step/{}/request", version);
}
std::string paused(uint64_t version, const std::string &peer) {
    return fmt::format("step/{}/paused/{}", version, peer);
}
std::string done(uint64_t version, int rank) {
    return fmt::format("step/{}/done/{}", version, rank);
}
std::string failed(uint64_t version, const std::string &who) {
    return fmt::format("step/{}/failed/{}", version, who);
}
std::string resumed(uint64_t version, const std::string &peer) {
    return fmt::format("step/{}/resumed/{}", version, peer);
}
std::string aborted(uint64_t version, const std::string &peer) {
    return fmt::format("step/{}/aborted/{}", version, peer);
}
std::string verified(uint64_t version, const std::string &peer) {
    return fmt::format("step/{}/verified/{}", version, peer);
}
std::string landed(uint64_t version, const std::string &peer) {
    return fmt::format("step/{}/landed/{}", version, peer);
}
std::string metrics(uint64_t version, int rank) {
    return fmt::format("step/{}/metrics/{}", version, rank);
}
}  // namespace keys

namespace {

std::string commonPrefix(const std::vector<std::string> &keys) {
    if (keys.empty()) return "";
    std::string p = keys.front();
    for (const std::string &k : keys) {
        size_t n = 0;
        while (n < p.size() && n < k.size() && p[n] == k[n]) ++n;
        p.resize(n);
    }
    return p.substr(0, p.rfind('/') + 1);
}

}  // namespace

std::vector<std::string> awaitKeys(control::Store &store, const std::vector<std::string> &expected,
                                   const std::string &fail_prefix,
                                   std::chrono::milliseconds timeout, const std::string &what) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    // Watch the common prefix of everything we wait for (and of the failure keys).
    std::string prefix = commonPrefix(expected);
    if (!fail_prefix.empty()) prefix = commonPrefix({prefix + "x", fail_prefix + "x"});
    std::map<std::string, std::string> seen;
    uint64_t revision = 0;
    for (;;) {
        for (const control::KeyValue &kv : store.list(prefix)) {
            revision = std::max(revision, kv.revision);
            if (!fail_prefix.empty() && kv.key.starts_with(fail_prefix)) {
                fail(Errc::kPeerLost, "{}: aborted: {}", what, kv.value);
            }
            seen[kv.key] = kv.value;
        }
        std::vector<std::string> missing;
        for (const std::string &k : expected) {
            if (!seen.contains(k)) missing.push_back(k);
        }
        if (missing.empty()) {
            std::vector<std::string> values;
            for (const std::string &k : expected) values.push_back(seen[k]);
            return values;
        }
        const auto now = Clock::now();
        if (now >= deadline) {
            if (missing.size() > 8) missing.resize(8);
            fail(Errc::kTimeout, "{}: timed out after {} ms waiting for {}", what, timeout.count(),
                 fmt::join(missing, ", "));
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        try {
            (void)store.watch(prefix, revision, std::min(left, std::chrono::milliseconds(1000)));
        } catch (const Error &e) {
            if (e.code() != Errc::kTimeout) throw;
        }
    }
}

}  // namespace weightsync::engine
