// Two-process CUDA IPC: this binary sends from GPU 0, cuda_ipc_peer receives on GPU 1 (GPU 0 when
// there is one GPU). The peer is started (fork + exec) before this process touches CUDA.

#include "common/error.h"
#include "gpu/transport/pattern.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#include "support/peer_process.h"
#include "transport/cuda_ipc/cuda_ipc_backend.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace weightsync::transport {
namespace {

using nlohmann::json;
using weightsync::testing::PeerProcess;

constexpr size_t kBytes = size_t{64} << 20;
constexpr auto kReply = std::chrono::seconds(60);

class CudaIpcTwoProcess : public ::testing::Test {
  protected:
    void SetUp() override {
        // Before any CUDA call in this process.
        peer_ = std::make_unique<PeerProcess>(WEIGHTSYNC_CUDA_IPC_PEER,
                                              std::vector<std::string>{std::to_string(kBytes)});
        hello_ = json::parse(peer_->readLine(kReply));
        if (hello_.contains("skip")) GTEST_SKIP() << hello_.at("skip").get<std::string>();
        ASSERT_FALSE(hello_.contains("error")) << hello_.dump();
        ASSERT_GT(platform::deviceCount(), 0);
        CudaIpcOptions options;
        options.device = 0;
        options.streams = 4;
        options.chunk_bytes = size_t{4} << 20;  // several chunks per write, over every stream
        backend_ = makeCudaIpcBackend(options);
        source_ = platform::DeviceBuffer(kBytes, 0);
        local_ = backend_->registerMemory(source_.data(), kBytes, MemoryKind::kCuda, 0);
        backend_->connect("receiver", hello_.at("address").get<std::string>());
    }

    void upload(uint64_t seed) {
        const auto bytes = test_support::pattern(seed, kBytes);
        ASSERT_EQ(cudaMemcpy(source_.data(), bytes.data(), kBytes, cudaMemcpyHostToDevice),
                  cudaSuccess);
    }

    // Writes the whole source in uneven pieces (odd sizes, so chunks and streams interleave).
    void writeAll(RemoteRegion &target) {
        const size_t pieces[] = {(size_t{3} << 20) + 7, (size_t{9} << 20) - 3, 4096, 1,
                                 size_t{16} << 20};
        size_t offset = 0;
        for (size_t i = 0; offset < kBytes; ++i) {
            const size_t n = std::min(pieces[i % std::size(pieces)], kBytes - offset);
            backend_->postWrite(*local_, offset, target, offset, n);
            offset += n;
        }
        const FlushStats stats = backend_->flush(std::chrono::seconds(30));
        EXPECT_EQ(stats.bytes, kBytes);
    }

    json command(const std::string &line) {
        EXPECT_TRUE(peer_->writeLine(line));
        return json::parse(peer_->readLine(kReply));
    }

    void expectReceived(uint64_t seed) {
        const json reply = command("verify " + std::to_string(seed));
        EXPECT_EQ(reply.at("mismatches").get<size_t>(), 0U) << "seed " << seed;
        EXPECT_EQ(reply.at("guard").get<size_t>(), 0U) << "bytes outside the region changed";
    }

    std::unique_ptr<PeerProcess> peer_;
    json hello_;
    std::unique_ptr<TransportBackend> backend_;
    platform::DeviceBuffer source_;
    std::unique_ptr<LocalRegion> local_;
};

TEST_F(CudaIpcTwoProcess, Writes64MiBInPiecesAndTheReceiverSeesEveryByte) {
    const auto descriptor = RemoteDescriptor::fromJson(hello_.at("region"));
    EXPECT_EQ(descriptor.backend, "cuda_ipc");
    EXPECT_EQ(descriptor.length, kBytes);
    auto remote = backend_->importRegion("receiver", descriptor);
    EXPECT_EQ(remote->size(), kBytes);
    upload(1);
    writeAll(*remote);
    expectReceived(1);
    // Again, with other bytes: the same mapping is reused.
    upload(2);
    writeAll(*remote);
    expectReceived(2);
}

TEST_F(CudaIpcTwoProcess, NewGenerationReopensTheMappingAndRetiresTheOld) {
    const auto first = RemoteDescriptor::fromJson(hello_.at("region"));
    auto old_remote = backend_->importRegion("receiver", first);
    auto also_old = backend_->importRegion("receiver", first);  // shares the mapping
    upload(3);
    writeAll(*old_remote);
    expectReceived(3);

    // The receiver re-creates its backend: same memory, newer generation.
    const json again = command("reregister");
    const auto second = RemoteDescriptor::fromJson(again.at("region"));
    ASSERT_GT(second.generation, first.generation);
    backend_->connect("receiver", again.at("address").get<std::string>());
    auto remote = backend_->importRegion("receiver", second);

    // Regions of the old generation are closed, and an old descriptor is refused.
    try {
        backend_->postWrite(*local_, 0, *old_remote, 0, 16);
        ADD_FAILURE() << "a write through a retired mapping succeeded";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kPeerLost) << e.what();
    }
    try {
        (void)backend_->importRegion("receiver", first);
        ADD_FAILURE() << "a stale descriptor was imported";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::kMismatch) << e.what();
    }
    old_remote.reset();
    also_old.reset();

    upload(4);
    writeAll(*remote);
    expectReceived(4);
}

}  // namespace
}  // namespace weightsync::transport
