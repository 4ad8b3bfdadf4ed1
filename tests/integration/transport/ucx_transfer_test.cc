// Writes between two real processes over UCX: the test is the sender, transport_peer receives.

#include "integration/transport/receiver.h"
#include "support/expect_error.h"
#include "transport/ucx/ucx_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace weightsync::transport {
namespace {

using namespace std::chrono_literals;
using test_support::Receiver;
using test_support::TransportCase;

class TransportUcx : public ::testing::TestWithParam<TransportCase> {
  protected:
    UcxOptions options() const {
        UcxOptions options;
        options.transports = GetParam().transports;
        return options;
    }
};

TEST_P(TransportUcx, SmokeOneWrite) {
    constexpr size_t kBytes = size_t{4} << 20;
    Receiver receiver(GetParam().transports, 1, kBytes, 0);
    auto sender = makeUcxBackend(options());
    auto source = test_support::randomBytes(kBytes, 1);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver.address());
    sender->connect("engine0", receiver.address());  // idempotent
    auto remote = sender->importRegion("engine0", receiver.regions().at(0));
    EXPECT_EQ(remote->size(), kBytes);
    EXPECT_EQ(remote->peer(), "engine0");

    sender->postWrite(*local, 0, *remote, 0, kBytes);
    const FlushStats stats = sender->flush(20s);
    EXPECT_EQ(stats.writes, 1U);
    EXPECT_EQ(stats.bytes, kBytes);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(source));
    EXPECT_EQ(sender->flush(1s).writes, 0U);
}

// Small in-flight limits force postWrite to wait for completions; writes are chunked, unaligned
// and spread over two receivers with two regions each. Target ranges do not overlap within one
// flush epoch (UCX does not order overlapping puts), but do across epochs.
TEST_P(TransportUcx, ManyWritesWithSmallInflightLimits) {
    constexpr size_t kRegion = size_t{1} << 20;
    constexpr int kEpochs = 3;
    constexpr uint8_t kFill = 0xee;
    std::vector<std::unique_ptr<Receiver>> receivers;
    for (int i = 0; i < 2; ++i) {
        receivers.push_back(std::make_unique<Receiver>(GetParam().transports, 2, kRegion, kFill));
    }
    UcxOptions opts = options();
    opts.max_inflight_writes = 3;
    opts.max_inflight_bytes = 100 << 10;
    opts.max_write_size = 32 << 10;
    opts.post_timeout = 20s;
    auto sender = makeUcxBackend(opts);
    auto source = test_support::randomBytes(kRegion, 2);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);

    const auto remotes = test_support::importAll(*sender, receivers);
    std::vector<std::vector<uint8_t>> expected(remotes.size(),
                                               std::vector<uint8_t>(kRegion, kFill));

    std::mt19937 rng(7);
    for (int epoch = 0; epoch < kEpochs; ++epoch) {
        struct Piece {
            size_t region, offset, length;
        };
        std::vector<Piece> pieces;
        for (size_t r = 0; r < remotes.size(); ++r) {
            for (size_t offset = 0; offset < kRegion;) {
                const size_t length = std::min<size_t>(kRegion - offset, 1 + rng() % (200 << 10));
                pieces.push_back({r, offset, length});
                offset += length;
            }
        }
        std::shuffle(pieces.begin(), pieces.end(), rng);
        uint64_t bytes = 0;
        for (const auto &p : pieces) {
            const size_t src = rng() % (kRegion - p.length + 1);
            sender->postWrite(*local, src, *remotes[p.region], p.offset, p.length);
            std::copy_n(source.begin() + static_cast<std::ptrdiff_t>(src), p.length,
                        expected[p.region].begin() + static_cast<std::ptrdiff_t>(p.offset));
            bytes += p.length;
        }
        const FlushStats stats = sender->flush(20s);
        EXPECT_EQ(stats.writes, pieces.size());
        EXPECT_EQ(stats.bytes, bytes);
    }
    test_support::expectReceiversHold(receivers, 2, expected);
}

TEST_P(TransportUcx, OutOfRangeWriteIsRejectedBeforePosting) {
    constexpr size_t kBytes = 64 << 10;
    Receiver receiver(GetParam().transports, 1, kBytes, 0x5a);
    auto sender = makeUcxBackend(options());
    std::vector<uint8_t> source(2 * kBytes, 1);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver.address());
    auto remote = sender->importRegion("engine0", receiver.regions().at(0));

    const auto past_target = weightsync::testing::thrownBy(
        [&] { sender->postWrite(*local, 0, *remote, kBytes - 10, 11); });
    ASSERT_TRUE(past_target);
    EXPECT_EQ(past_target->code, Errc::kInvalidArgument);
    EXPECT_NE(past_target->message.find("engine0"), std::string::npos) << past_target->message;
    EXPECT_EQ(
        weightsync::testing::codeOf([&] { sender->postWrite(*local, 2 * kBytes, *remote, 0, 1); }),
        Errc::kInvalidArgument);
    EXPECT_EQ(
        weightsync::testing::codeOf([&] { sender->postWrite(*local, 0, *remote, SIZE_MAX, 2); }),
        Errc::kInvalidArgument);
    EXPECT_EQ(sender->flush(5s).writes, 0U);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(std::vector<uint8_t>(kBytes, 0x5a)));
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportUcx,
                         ::testing::ValuesIn(test_support::transportCases()),
                         test_support::caseName);

TEST(TransportUcxBackend, CudaRegistrationIsUnsupportedOnHostOnlyUcx) {
    auto backend = makeUcxBackend(UcxOptions{});
    if (backend->capabilities().cuda_memory) GTEST_SKIP() << "this UCX supports CUDA memory";
    char byte = 0;
    const auto thrown = weightsync::testing::thrownBy(
        [&] { backend->registerMemory(&byte, 1, MemoryKind::kCuda, 0); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kUnsupported);
    EXPECT_NE(thrown->message.find("libucx-cu13"), std::string::npos) << thrown->message;
}

TEST(TransportUcxBackend, RejectsForeignRegionsAndBadAddresses) {
    auto a = makeUcxBackend(UcxOptions{});
    auto b = makeUcxBackend(UcxOptions{});
    std::vector<uint8_t> buffer(4096);
    auto region = b->registerMemory(buffer.data(), buffer.size(), MemoryKind::kHost, -1);
    EXPECT_EQ(weightsync::testing::codeOf([&] { a->connect("x", "inproc:1:1"); }),
              Errc::kInvalidArgument);
    EXPECT_EQ(weightsync::testing::codeOf([&] { a->importRegion("x", region->describe()); }),
              Errc::kNotFound);
    EXPECT_EQ(weightsync::testing::codeOf(
                  [&] { a->registerMemory(buffer.data(), buffer.size(), MemoryKind::kHost, 0); }),
              Errc::kInvalidArgument);
    a->connect("b", b->address());
    auto remote = a->importRegion("b", region->describe());
    // The source region belongs to backend b, not a.
    EXPECT_EQ(weightsync::testing::codeOf([&] { a->postWrite(*region, 0, *remote, 0, 1); }),
              Errc::kInvalidArgument);
    auto d = region->describe();
    d.backend = "inproc";
    EXPECT_EQ(weightsync::testing::codeOf([&] { a->importRegion("b", d); }), Errc::kMismatch);
}

TEST(TransportUcxBackend, UserEnvironmentWinsOverOptions) {
    // ctest runs every case in its own process, so this does not leak into other tests.
    ASSERT_EQ(::setenv("UCX_TLS", "tcp,self", 1), 0);
    UcxOptions options;
    options.transports = "no_such_transport";  // would make ucp_init fail if applied
    EXPECT_NO_THROW(makeUcxBackend(options));
    ::unsetenv("UCX_TLS");
    EXPECT_EQ(weightsync::testing::codeOf([&] { makeUcxBackend(options); }), Errc::kTransport);
}

}  // namespace
}  // namespace weightsync::transport
