// The transport selector: which backends a receiver offers and which one a writer picks, for
// every pairing of memory kinds and hosts, and the refusals that name the peer.

#include "transport/selector.h"
#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace weightsync::transport {
namespace {

using weightsync::testing::thrownBy;
using Strings = std::vector<std::string>;

constexpr auto kAuto = TransportChoice::kAuto;
constexpr auto kHost = MemoryKind::kHost;
constexpr auto kCuda = MemoryKind::kCuda;

Capabilities caps(bool host, bool cuda) {
    Capabilities c;
    c.host_memory = host;
    c.cuda_memory = cuda;
    return c;
}

TEST(TransportSelector, ChoiceNamesRoundTrip) {
    for (const std::string_view name : choiceNames()) {
        const auto choice = parseChoice(name);
        ASSERT_TRUE(choice) << name;
        EXPECT_EQ(choiceName(*choice), name);
    }
    EXPECT_EQ(choiceNames().size(), 6u);
    EXPECT_EQ(parseChoice("cuda_ipc"), TransportChoice::kCudaIpc);
    EXPECT_EQ(parseChoice("nccl"), TransportChoice::kNccl);
    EXPECT_FALSE(parseChoice("rdma"));
    EXPECT_FALSE(parseChoice(""));
    EXPECT_FALSE(parseChoice("UCX"));
}

TEST(TransportSelector, ReceiversOfferWhatReachesTheirMemory) {
    EXPECT_EQ(receiverCandidates(kAuto, kHost), Strings{"ucx"});
    EXPECT_EQ(receiverCandidates(kAuto, kCuda), (Strings{"cuda_ipc", "ucx"}));
    // A named transport is offered alone, whatever the memory.
    EXPECT_EQ(receiverCandidates(TransportChoice::kUcx, kCuda), Strings{"ucx"});
    EXPECT_EQ(receiverCandidates(TransportChoice::kCudaIpc, kCuda), Strings{"cuda_ipc"});
    EXPECT_EQ(receiverCandidates(TransportChoice::kInproc, kHost), Strings{"inproc"});
    // The filesystem transport has no backend: receivers read the checkpoint files.
    EXPECT_EQ(receiverCandidates(TransportChoice::kFilesystem, kHost), Strings{});
}

TEST(TransportSelector, AutoDropsABackendThatCannotRegisterTheMemory) {
    // UCX without CUDA support is not offered for GPU memory under auto...
    EXPECT_FALSE(keepOffer(kAuto, caps(true, false), kCuda));
    EXPECT_TRUE(keepOffer(kAuto, caps(true, true), kCuda));
    EXPECT_TRUE(keepOffer(kAuto, caps(true, false), kHost));
    EXPECT_FALSE(keepOffer(kAuto, caps(false, true), kHost));
    // ...but a backend the job names is kept: registering the memory says what fails.
    EXPECT_TRUE(keepOffer(TransportChoice::kUcx, caps(true, false), kCuda));
}

TEST(TransportSelector, AutoPicksCudaIpcOnlyBetweenGpuMemoryOfOneHost) {
    const PeerOffer gpu_here{{"cuda_ipc", "ucx"}, kCuda, true};
    EXPECT_EQ(selectBackend(kAuto, kCuda, gpu_here, "e0r0"), "cuda_ipc");
    // Host memory on the writer's side, another host, or host memory on the peer: UCX.
    EXPECT_EQ(selectBackend(kAuto, kHost, gpu_here, "e0r0"), "ucx");
    EXPECT_EQ(selectBackend(kAuto, kCuda, PeerOffer{{"cuda_ipc", "ucx"}, kCuda, false}, "e0r0"),
              "ucx");
    EXPECT_EQ(selectBackend(kAuto, kCuda, PeerOffer{{"ucx"}, kHost, true}, "e0r0"), "ucx");
    // A peer that offers only CUDA-IPC cannot be reached from another host.
    const auto thrown = thrownBy([] {
        (void)selectBackend(kAuto, kCuda, {{"cuda_ipc"}, kCuda, false}, "e1r3");
    });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kUnsupported);
    EXPECT_NE(thrown->message.find("e1r3"), std::string::npos) << thrown->message;
    EXPECT_NE(thrown->message.find("on another host"), std::string::npos) << thrown->message;
}

TEST(TransportSelector, ANamedTransportMustBeOffered) {
    const PeerOffer ucx_only{{"ucx"}, kHost, true};
    EXPECT_EQ(selectBackend(TransportChoice::kUcx, kHost, ucx_only, "e0r1"), "ucx");
    const auto thrown =
        thrownBy([&] { (void)selectBackend(TransportChoice::kCudaIpc, kCuda, ucx_only, "e0r1"); });
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->code, Errc::kUnsupported);
    EXPECT_NE(thrown->message.find("does not offer transport 'cuda_ipc'"), std::string::npos)
        << thrown->message;
    EXPECT_NE(thrown->message.find("e0r1"), std::string::npos) << thrown->message;
}

TEST(TransportSelector, NcclOnlyWhenNamed) {
    // Two-sided: a receiver offers it only when the job names it, and auto never picks it.
    EXPECT_EQ(receiverCandidates(TransportChoice::kNccl, kCuda), Strings{"nccl"});
    const PeerOffer nccl{{"nccl"}, kCuda, true};
    EXPECT_EQ(selectBackend(TransportChoice::kNccl, kCuda, nccl, "e0r0"), "nccl");
    EXPECT_TRUE(thrownBy([&] { (void)selectBackend(kAuto, kCuda, nccl, "e0r0"); }).has_value());
}

}  // namespace
}  // namespace weightsync::transport
