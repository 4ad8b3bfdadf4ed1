// Receivers whose memory comes from allocateMemory (shared memory) and that never run a progress
// thread, nor progress their worker at all: the sender's writes must land anyway, byte for byte.
// This is what makes a push truly one-sided. Registered memory, by contrast, needs the receiver.

#include "integration/transport/receiver.h"
#include "support/expect_error.h"
#include "transport/ucx/ucx_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <thread>

namespace weightsync::transport {
namespace {

using namespace std::chrono_literals;
using test_support::Receiver;

struct OneSidedCase {
    std::string label;
    std::string transports;
    bool direct_copy;  // the sender copies into the mapped segment itself, or uses ucp_put_nbx
    bool prefault_imports = true;
};

void PrintTo(const OneSidedCase &c, std::ostream *os) {
    *os << c.label;
}

class TransportUcxOneSided : public ::testing::TestWithParam<OneSidedCase> {
  protected:
    [[nodiscard]] UcxOptions options() const {
        UcxOptions options;
        options.transports = GetParam().transports;
        options.direct_copy = GetParam().direct_copy;
        options.prefault_imports = GetParam().prefault_imports;
        return options;
    }
};

TEST_P(TransportUcxOneSided, WritesLandWithoutReceiverProgress) {
    constexpr size_t kBytes = size_t{8} << 20;
    Receiver receiver(GetParam().transports, 1, kBytes, 0x11, "allocate,no-progress");
    auto sender = makeUcxBackend(options());
    auto source = test_support::randomBytes(kBytes, 5);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver.address());
    auto remote = sender->importRegion("engine0", receiver.regions().at(0));

    const auto start = std::chrono::steady_clock::now();
    sender->postWrite(*local, 0, *remote, 0, kBytes);
    EXPECT_EQ(sender->flush(10s).bytes, kBytes);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(source));

    // Overwrite a middle range: only it changes.
    auto expected = source;
    std::fill_n(source.begin() + 1000, 5000, uint8_t{0x42});
    std::fill_n(expected.begin() + 3000, 5000, uint8_t{0x42});
    sender->postWrite(*local, 1000, *remote, 3000, 5000);
    EXPECT_EQ(sender->flush(10s).writes, 1U);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(expected));
}

// Unaligned writes of random sizes to two non-progressing receivers with two regions each, with
// small write sizes and in-flight limits (which only the ucp_put_nbx path uses).
TEST_P(TransportUcxOneSided, ManyUnalignedWritesToTwoReceivers) {
    constexpr size_t kRegion = size_t{1} << 20;
    constexpr uint8_t kFill = 0xee;
    std::vector<std::unique_ptr<Receiver>> receivers;
    for (int i = 0; i < 2; ++i) {
        receivers.push_back(std::make_unique<Receiver>(GetParam().transports, 2, kRegion, kFill,
                                                       "allocate,no-progress"));
    }
    UcxOptions opts = options();
    opts.max_inflight_writes = 3;
    opts.max_inflight_bytes = 100 << 10;
    opts.max_write_size = 32 << 10;
    auto sender = makeUcxBackend(opts);
    auto source = test_support::randomBytes(kRegion, 6);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    const auto remotes = test_support::importAll(*sender, receivers);
    std::vector<std::vector<uint8_t>> expected(remotes.size(),
                                               std::vector<uint8_t>(kRegion, kFill));
    std::mt19937 rng(11);
    for (int epoch = 0; epoch < 2; ++epoch) {
        uint64_t writes = 0;
        for (size_t r = 0; r < remotes.size(); ++r) {
            for (size_t offset = 0; offset < kRegion;) {
                const size_t length = std::min<size_t>(kRegion - offset, 1 + rng() % (300 << 10));
                const size_t src = rng() % (kRegion - length + 1);
                sender->postWrite(*local, src, *remotes[r], offset, length);
                std::copy_n(source.begin() + static_cast<std::ptrdiff_t>(src), length,
                            expected[r].begin() + static_cast<std::ptrdiff_t>(offset));
                offset += length;
                ++writes;
            }
        }
        EXPECT_EQ(sender->flush(10s).writes, writes);
    }
    test_support::expectReceiversHold(receivers, 2, expected);
}

// The receiver dies: its segment outlives it while this process maps it, so writes into it
// neither crash the sender (no SIGBUS) nor hang; a restarted receiver is reachable again.
TEST_P(TransportUcxOneSided, ReceiverKilledThenRestarted) {
    constexpr size_t kBytes = size_t{2} << 20;
    auto receiver =
        std::make_unique<Receiver>(GetParam().transports, 1, kBytes, 0, "allocate,no-progress");
    UcxOptions opts = options();
    opts.post_timeout = 2s;
    auto sender = makeUcxBackend(opts);
    auto source = test_support::randomBytes(kBytes, 8);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver->address());
    auto remote = sender->importRegion("engine0", receiver->regions().at(0));
    sender->postWrite(*local, 0, *remote, 0, kBytes);
    sender->flush(5s);

    receiver->process().kill();
    const auto start = std::chrono::steady_clock::now();
    try {
        sender->postWrite(*local, 0, *remote, 0, kBytes);
        sender->flush(2s);  // may succeed: the bytes land in the orphaned segment
    } catch (const Error &e) {
        EXPECT_TRUE(e.code() == Errc::kPeerLost || e.code() == Errc::kTimeout ||
                    e.code() == Errc::kTransport)
            << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

    receiver =
        std::make_unique<Receiver>(GetParam().transports, 1, kBytes, 0, "allocate,no-progress");
    sender->connect("engine0", receiver->address());
    remote = sender->importRegion("engine0", receiver->regions().at(0));
    sender->postWrite(*local, 0, *remote, 0, kBytes);
    EXPECT_EQ(sender->flush(5s).bytes, kBytes);
    EXPECT_EQ(receiver->hashes().at(0), test_support::hashOf(source));
}

// Marks (early completion): a mark reached before any flush means its writes' bytes are in the
// receiver's memory; a later mark waits for later writes only; a flush reaches every mark.
TEST_P(TransportUcxOneSided, AReachedMarkMeansItsWritesLanded) {
    constexpr size_t kBytes = size_t{4} << 20;
    Receiver receiver(GetParam().transports, 1, kBytes, 0, "allocate,no-progress");
    UcxOptions opts = options();
    opts.max_write_size = 256 << 10;  // several puts per write on the ucp_put_nbx path
    auto sender = makeUcxBackend(opts);
    auto source = test_support::randomBytes(kBytes, 9);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver.address());
    auto remote = sender->importRegion("engine0", receiver.regions().at(0));

    const std::optional<uint64_t> nothing = sender->mark();  // no write before it
    ASSERT_TRUE(nothing.has_value());
    EXPECT_EQ(sender->markState(*nothing), TransportBackend::MarkState::kReached);

    const auto reach = [&](uint64_t mark) {
        // Polled without flushing; the deadline only turns a hang into a failure.
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        auto state = sender->markState(mark);
        while (state == TransportBackend::MarkState::kPending &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
            state = sender->markState(mark);
        }
        return state;
    };
    auto expected = std::vector<uint8_t>(kBytes, 0);
    sender->postWrite(*local, 0, *remote, 0, kBytes / 2);
    std::copy_n(source.begin(), kBytes / 2, expected.begin());
    const std::optional<uint64_t> first = sender->mark();
    ASSERT_TRUE(first.has_value());
    ASSERT_EQ(reach(*first), TransportBackend::MarkState::kReached);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(expected));  // before any flush

    sender->postWrite(*local, kBytes / 2, *remote, kBytes / 2, kBytes / 2);
    const std::optional<uint64_t> second = sender->mark();
    ASSERT_TRUE(second.has_value());
    EXPECT_GT(*second, *first);
    EXPECT_EQ(sender->markState(*first), TransportBackend::MarkState::kReached);  // for good
    ASSERT_EQ(reach(*second), TransportBackend::MarkState::kReached);
    EXPECT_EQ(receiver.hashes().at(0), test_support::hashOf(source));

    sender->postWrite(*local, 0, *remote, 0, 1000);
    const std::optional<uint64_t> third = sender->mark();
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(sender->flush(10s).writes, 3U);
    EXPECT_EQ(sender->markState(*third), TransportBackend::MarkState::kReached);
    EXPECT_EQ(sender->markState(*third + 1), TransportBackend::MarkState::kFailed);  // never made
}

std::string oneSidedName(const ::testing::TestParamInfo<OneSidedCase> &param_info) {
    return param_info.param.label;
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportUcxOneSided,
                         ::testing::Values(OneSidedCase{"shm", "posix,sysv,self", true},
                                           OneSidedCase{"shm_put", "posix,sysv,self", false},
                                           OneSidedCase{"shm_lazy", "posix,sysv,self", true, false},
                                           OneSidedCase{"posix", "posix,self", true},
                                           OneSidedCase{"sysv_put", "sysv,self", false},
                                           OneSidedCase{"default", "", true}),
                         oneSidedName);

// The contrast: into memory the receiver registered, UCX emulates puts with messages that only
// a progressing receiver handles, so without progress the flush times out.
TEST(TransportUcxOneSidedContrast, RegisteredMemoryNeedsReceiverProgress) {
    constexpr size_t kBytes = 64 << 10;
    Receiver receiver("posix,sysv,self", 1, kBytes, 0, "no-progress");
    UcxOptions options;
    options.transports = "posix,sysv,self";
    auto sender = makeUcxBackend(options);
    std::vector<uint8_t> source(kBytes, 7);
    auto local = sender->registerMemory(source.data(), source.size(), MemoryKind::kHost, -1);
    sender->connect("engine0", receiver.address());
    auto remote = sender->importRegion("engine0", receiver.regions().at(0));
    sender->postWrite(*local, 0, *remote, 0, kBytes);
    EXPECT_EQ(weightsync::testing::codeOf([&] { sender->flush(1s); }), Errc::kTimeout);
}

TEST(TransportUcxAllocate, SharedMemoryRegionSemantics) {
    constexpr size_t kBytes = (size_t{3} << 20) + 123;  // not a whole number of pages
    UcxOptions options;
    options.transports = "posix,sysv,self";
    auto backend = makeUcxBackend(options);
    auto region = backend->allocateMemory(kBytes, MemoryKind::kHost, -1);
    ASSERT_NE(region, nullptr);
    EXPECT_EQ(region->size(), kBytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(region->data()) % 4096, 0U);
    const auto *bytes = static_cast<const uint8_t *>(region->data());
    EXPECT_TRUE(std::all_of(bytes, bytes + kBytes, [](uint8_t b) { return b == 0; }));
    std::memset(region->data(), 0x5a, kBytes);  // writable
    const RemoteDescriptor d = region->describe();
    EXPECT_EQ(d.backend, "ucx");
    EXPECT_EQ(d.address, reinterpret_cast<uintptr_t>(region->data()));
    EXPECT_EQ(d.length, kBytes);
    EXPECT_EQ(d.kind, MemoryKind::kHost);
    EXPECT_FALSE(d.key.empty());

    EXPECT_EQ(backend->allocateMemory(4096, MemoryKind::kCuda, 0), nullptr);
    EXPECT_EQ(
        weightsync::testing::codeOf([&] { backend->allocateMemory(0, MemoryKind::kHost, -1); }),
        Errc::kInvalidArgument);
    EXPECT_EQ(
        weightsync::testing::codeOf([&] { backend->allocateMemory(4096, MemoryKind::kHost, 0); }),
        Errc::kInvalidArgument);
    region.reset();  // frees the segment
}

TEST(TransportUcxAllocate, NothingBetterWithoutSharedMemory) {
    UcxOptions options;
    options.transports = "tcp,self";
    EXPECT_EQ(makeUcxBackend(options)->allocateMemory(1 << 20, MemoryKind::kHost, -1), nullptr);
}

}  // namespace
}  // namespace weightsync::transport
