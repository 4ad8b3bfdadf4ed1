#pragma once
// NcclBackend: TransportBackend over NCCL send/recv, one 2-rank communicator per (writer,
// receiver) pair. See nccl_backend.h for the model.
//
// Ordering: NCCL matches the sends and receives of one communicator in the order they are
// posted, so a receiver posts its receives from a writer in the writer's order (the engine
// derives both from the plan: planner/receives.h). Each pair runs on its own stream, so that the
// kernels of different pairs never queue behind each other on one stream; every batch goes
// through one ncclGroupStart/End over all its pairs.
//
// Threading: one owner thread at a time (see transport.h); there is no progress thread.

#include "platform/cuda/resources.h"
#include "transport/nccl/nccl_backend.h"
#include "transport/nccl/nccl_comm.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::transport::nccl {

class NcclBackend final : public TransportBackend {
  public:
    explicit NcclBackend(const NcclOptions &options);
    ~NcclBackend() override;
    NcclBackend(const NcclBackend &) = delete;
    NcclBackend &operator=(const NcclBackend &) = delete;

    [[nodiscard]] const Capabilities &capabilities() const override { return capabilities_; }
    [[nodiscard]] std::string address() const override;
    std::unique_ptr<LocalRegion> registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                int device) override;
    void connect(const std::string &peer_name, const std::string &peer_address) override;
    std::unique_ptr<RemoteRegion> importRegion(const std::string &peer_name,
                                               const RemoteDescriptor &descriptor) override;
    void postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                   size_t target_offset, size_t length) override;
    std::string makePairToken() override;
    void pair(const std::string &peer, const std::string &token, bool writer,
              std::chrono::milliseconds timeout) override;
    void postReceive(const LocalRegion &target, size_t offset, const std::string &peer,
                     size_t length) override;
    void submit() override;
    FlushStats flush(std::chrono::milliseconds timeout) override;
    void startProgressThread() override {}
    void stopProgressThread() override {}

  private:
    struct Pair {
        Pair(int device, int rank);
        int rank;  // ours in the pair's communicator: 0 writes, 1 receives
        platform::Stream stream;
        platform::Event done;
        std::unique_ptr<Comm> comm;  // declared last: aborted before its stream goes
        bool busy = false;           // work handed to NCCL since the last flush
    };
    struct Op {
        Pair *pair = nullptr;
        const void *send = nullptr;  // a write's source, or
        void *recv = nullptr;        // a receive's target
        size_t bytes = 0;
    };
    /// The live pair with `peer`; kNotFound before pair(), kPeerLost once aborted.
    Pair &live(const std::string &peer, bool writer);
    /// Aborts every pair in `pairs` and throws `code` with `message` (the epoch ends).
    [[noreturn]] void failPairs(const std::vector<Pair *> &pairs, Errc code,
                                const std::string &message);

    NcclOptions options_;
    Capabilities capabilities_;
    int device_;
    uint64_t generation_;
    std::string host_;
    std::string uuid_;                             // of device_
    platform::DeviceBuffer warm_;                  // a few bytes each new pair moves once
    std::map<std::string, std::string> peer_gpu_;  // connected peer -> "host/uuid" of its GPU
    std::map<std::string, std::unique_ptr<Pair>> pairs_;
    std::vector<Op> queued_;  // posted, not yet submitted
    FlushStats unflushed_;
};

}  // namespace weightsync::transport::nccl
