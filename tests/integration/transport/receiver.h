#pragma once
// A transport_peer child acting as an inference engine's receiver, plus the sender-side helpers
// the UCX integration tests share.

#include "common/base64.h"
#include "support/peer_process.h"
#include "transport/transport.h"

#include <gtest/gtest.h>
#include <xxhash.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace weightsync::transport::test_support {

using weightsync::testing::PeerProcess;

struct TransportCase {
    std::string label;                               // shows in the test name
    std::string transports;                          // UcxOptions::transports
    std::map<std::string, std::string> config = {};  // sender's UcxOptions::config
};

inline const std::vector<TransportCase> &transportCases() {
    static const std::vector<TransportCase> kCases = {{"shm", "posix,sysv,self"},
                                                      {"tcp", "tcp,self"}};
    return kCases;
}

inline void PrintTo(const TransportCase &c, std::ostream *os) {
    *os << c.label;
}

inline std::string caseName(const ::testing::TestParamInfo<TransportCase> &param_info) {
    return param_info.param.label;
}

class Receiver {
  public:
    /// `mode`: transport_peer's flags, e.g. "allocate,no-progress" ("" = registered memory and a
    /// progress thread).
    Receiver(const std::string &transports, size_t regions, size_t bytes, int fill,
             const std::string &mode = "")
        : process_(WEIGHTSYNC_TRANSPORT_PEER,
                   {"ucx", nlohmann::json{{"transports", transports}}.dump(),
                    std::to_string(regions), std::to_string(bytes), std::to_string(fill), mode}) {
        const auto hello = nlohmann::json::parse(process_.readLine(std::chrono::seconds(20)));
        address_ = decodeBase64(hello.at("address").get<std::string>());
        for (const auto &region : hello.at("regions")) {
            regions_.push_back(RemoteDescriptor::fromJson(region));
        }
    }

    [[nodiscard]] const std::string &address() const { return address_; }
    [[nodiscard]] const std::vector<RemoteDescriptor> &regions() const { return regions_; }
    PeerProcess &process() { return process_; }

    /// XXH3 of each of the receiver's regions.
    std::vector<uint64_t> hashes() {
        check(process_.writeLine("hash"), Errc::kPeerLost, "receiver is gone");
        const auto reply = nlohmann::json::parse(process_.readLine(std::chrono::seconds(20)));
        return reply.at("hashes").get<std::vector<uint64_t>>();
    }

  private:
    PeerProcess process_;
    std::string address_;
    std::vector<RemoteDescriptor> regions_;
};

inline uint64_t hashOf(const std::vector<uint8_t> &bytes) {
    return XXH3_64bits(bytes.data(), bytes.size());
}

inline std::vector<uint8_t> randomBytes(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t v = rng();
        std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
    }
    return out;
}

/// Connects `sender` to every receiver (as "engine<r>") and imports all their regions, in
/// receiver order.
inline std::vector<std::unique_ptr<RemoteRegion>> importAll(
    TransportBackend &sender, const std::vector<std::unique_ptr<Receiver>> &receivers) {
    std::vector<std::unique_ptr<RemoteRegion>> remotes;
    for (size_t r = 0; r < receivers.size(); ++r) {
        const std::string name = "engine" + std::to_string(r);
        sender.connect(name, receivers[r]->address());
        for (const auto &d : receivers[r]->regions())
            remotes.push_back(sender.importRegion(name, d));
    }
    return remotes;
}

/// Expects each receiver to hold `regions_each` regions and every region (in importAll order)
/// to hold `expected`'s bytes.
inline void expectReceiversHold(const std::vector<std::unique_ptr<Receiver>> &receivers,
                                size_t regions_each,
                                const std::vector<std::vector<uint8_t>> &expected) {
    size_t next = 0;
    for (size_t r = 0; r < receivers.size(); ++r) {
        const auto hashes = receivers[r]->hashes();
        ASSERT_EQ(hashes.size(), regions_each);
        for (size_t i = 0; i < hashes.size(); ++i, ++next) {
            ASSERT_LT(next, expected.size());
            EXPECT_EQ(hashes[i], hashOf(expected[next])) << "receiver " << r << " region " << i;
        }
    }
    EXPECT_EQ(next, expected.size());
}

}  // namespace weightsync::transport::test_support
