#include "transport/nccl/nccl_backend_impl.h"

#include "common/host.h"
#include "common/log.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/memory.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

namespace weightsync::transport {
namespace nccl {
namespace {

constexpr std::string_view kName = "nccl";
constexpr size_t kWarmBytes = 256;

bool fits(size_t offset, size_t length, size_t size) {
    return offset <= size && length <= size - offset;
}

int chooseDevice(int requested) {
    const int count = platform::deviceCount();
    check(count > 0, Errc::kUnsupported,
          "nccl: no CUDA device is visible (no driver or no GPU); the nccl transport moves GPU "
          "memory only");
    const int device = requested >= 0 ? requested : platform::currentDevice();
    check(device < count, Errc::kInvalidArgument, "nccl: device {} requested, {} visible", device,
          count);
    return device;
}

class NcclLocalRegion final : public LocalRegion {
  public:
    NcclLocalRegion(const NcclBackend *owner, void *data, size_t size, int device,
                    uint64_t generation)
        : owner_(owner), data_(data), size_(size), device_(device), generation_(generation) {}
    [[nodiscard]] void *data() const override { return data_; }
    [[nodiscard]] size_t size() const override { return size_; }
    [[nodiscard]] RemoteDescriptor describe() const override {
        RemoteDescriptor d;
        d.backend = std::string(kName);
        d.address = reinterpret_cast<uint64_t>(data_);
        d.length = size_;
        d.kind = MemoryKind::kCuda;
        d.device = device_;
        d.generation = generation_;
        return d;
    }
    [[nodiscard]] const NcclBackend *owner() const { return owner_; }

  private:
    const NcclBackend *owner_;
    void *data_;
    size_t size_;
    int device_;
    uint64_t generation_;
};

/// A receiver's region as a writer sees it: nothing to map (the receiver places the bytes); the
/// size bounds the writes.
class NcclRemoteRegion final : public RemoteRegion {
  public:
    NcclRemoteRegion(const NcclBackend *owner, std::string peer, size_t size)
        : owner_(owner), peer_(std::move(peer)), size_(size) {}
    [[nodiscard]] size_t size() const override { return size_; }
    [[nodiscard]] const std::string &peer() const override { return peer_; }
    [[nodiscard]] const NcclBackend *owner() const { return owner_; }

  private:
    const NcclBackend *owner_;
    std::string peer_;
    size_t size_;
};

}  // namespace

NcclBackend::Pair::Pair(int device, int rank_in_pair)
    : rank(rank_in_pair), stream(device), done(device) {}

NcclBackend::NcclBackend(const NcclOptions &options)
    : options_(options),
      device_(chooseDevice(options.device)),
      generation_(
          static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count())),
      host_(hostIdentity()),
      uuid_(platform::uuidString(platform::deviceUuid(device_))),
      warm_(kWarmBytes, device_) {
    capabilities_.name = kName;
    capabilities_.cuda_memory = true;
    capabilities_.two_sided = true;
    int version = 0;
    (void)ncclGetVersion(&version);
    logger("nccl")->debug("GPU {} ({}), NCCL {}", device_, uuid_, version);
}

NcclBackend::~NcclBackend() {
    if (unflushed_.writes > 0) {
        logger("nccl")->warn("destroying the backend with {} transfers unflushed; aborting them",
                             unflushed_.writes);
    }
    platform::DeviceGuard guard(device_);
    pairs_.clear();  // each communicator is aborted before its stream goes
}

std::string NcclBackend::address() const {
    return nlohmann::json{{"host", host_}, {"pid", ::getpid()}, {"gpu", uuid_}}.dump();
}

std::unique_ptr<LocalRegion> NcclBackend::registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                         int device) {
    check(kind == MemoryKind::kCuda, Errc::kUnsupported,
          "the nccl transport needs CUDA device memory; host memory goes over ucx");
    check(ptr != nullptr && length > 0, Errc::kInvalidArgument,
          "nccl: cannot register an empty range");
    const platform::PointerInfo info = platform::pointerInfo(ptr);
    check(
        info.kind == platform::PointerKind::kDevice || info.kind == platform::PointerKind::kManaged,
        Errc::kUnsupported, "nccl: {} is not CUDA device memory", static_cast<const void *>(ptr));
    check(device == device_ && info.device == device_, Errc::kInvalidArgument,
          "nccl: {} lives on GPU {} (registered as GPU {}), the backend runs on GPU {}",
          static_cast<const void *>(ptr), info.device, device, device_);
    return std::make_unique<NcclLocalRegion>(this, ptr, length, device, generation_);
}

void NcclBackend::connect(const std::string &peer_name, const std::string &peer_address) {
    check(!peer_name.empty(), Errc::kInvalidArgument, "nccl: empty peer name");
    std::string host;
    std::string gpu;
    try {
        const auto j = nlohmann::json::parse(peer_address);
        host = j.at("host").get<std::string>();
        gpu = j.at("gpu").get<std::string>();
    } catch (const nlohmann::json::exception &e) {
        fail(Errc::kInvalidArgument, "nccl: the address of peer {} is malformed: {}", peer_name,
             e.what());
    }
    check(host != host_ || gpu != uuid_, Errc::kUnsupported,
          "nccl: peer {} uses GPU {} too, as this process does; NCCL cannot connect two ranks on "
          "one GPU: put the inference ranks on other GPUs than the trainers, or use cuda_ipc",
          peer_name, gpu);
    peer_gpu_[peer_name] = host + "/" + gpu;
}

std::unique_ptr<RemoteRegion> NcclBackend::importRegion(const std::string &peer_name,
                                                        const RemoteDescriptor &descriptor) {
    check(descriptor.backend == kName, Errc::kMismatch,
          "nccl: peer {} described a region of backend '{}'", peer_name, descriptor.backend);
    check(descriptor.kind == MemoryKind::kCuda && descriptor.length > 0, Errc::kInvalidArgument,
          "nccl: the descriptor from peer {} is not a non-empty GPU region", peer_name);
    check(peer_gpu_.contains(peer_name), Errc::kNotFound, "nccl: peer {} is not connected",
          peer_name);
    return std::make_unique<NcclRemoteRegion>(this, peer_name,
                                              static_cast<size_t>(descriptor.length));
}

std::string NcclBackend::makePairToken() {
    ncclUniqueId id;
    const ncclResult_t r = ncclGetUniqueId(&id);
    check(r == ncclSuccess, ncclErrc(r), "nccl: ncclGetUniqueId: {}", ncclText(r, nullptr));
    std::string hex;
    for (const char c : id.internal) hex += fmt::format("{:02x}", static_cast<unsigned char>(c));
    return hex;
}

void NcclBackend::pair(const std::string &peer, const std::string &token, bool writer,
                       std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    constexpr size_t kIdBytes = sizeof(ncclUniqueId::internal);
    const bool hex = token.size() == 2 * kIdBytes &&
                     token.find_first_not_of("0123456789abcdef") == std::string::npos;
    check(hex, Errc::kInvalidArgument,
          "nccl: the pairing token for peer {} is not an NCCL unique id ({} hex digits)", peer,
          2 * kIdBytes);
    check(!writer || peer_gpu_.contains(peer), Errc::kNotFound,
          "nccl: connect to peer {} before pairing with it", peer);
    ncclUniqueId id;
    for (size_t i = 0; i < kIdBytes; ++i) {
        id.internal[i] = static_cast<char>(std::stoi(token.substr(2 * i, 2), nullptr, 16));
    }
    platform::DeviceGuard guard(device_);
    pairs_.erase(peer);  // a former pair with this name (aborted) is replaced
    auto p = std::make_unique<Pair>(device_, writer ? 0 : 1);
    p->comm = std::make_unique<Comm>(id, p->rank, peer);
    p->comm->await(deadline, "forming the pair");
    // Connect the pair's channels now (NCCL connects lazily, on the first transfer), so that the
    // first version neither pays for it nor is the first to find a pair that cannot connect.
    ncclResult_t r = ncclGroupStart();
    if (r == ncclSuccess) {
        r = writer
                ? ncclSend(warm_.data(), kWarmBytes, ncclUint8, 1, p->comm->get(), p->stream.get())
                : ncclRecv(warm_.data(), kWarmBytes, ncclUint8, 0, p->comm->get(), p->stream.get());
        const ncclResult_t end = ncclGroupEnd();
        if (r == ncclSuccess || r == ncclInProgress) r = end;
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        const std::string text = ncclText(r, p->comm->get());
        p->comm->abort();
        fail(ncclErrc(r), "nccl: the first transfer with peer {} failed: {}", peer, text);
    }
    p->comm->await(deadline, "connecting the pair");
    p->done.record(p->stream.get());
    while (!p->done.query()) {
        const ncclResult_t s = p->comm->state();
        if (s != ncclSuccess && s != ncclInProgress) {
            const std::string text = ncclText(s, p->comm->get());
            p->comm->abort();
            fail(ncclErrc(s), "nccl: the first transfer with peer {} failed: {}", peer, text);
        }
        if (Clock::now() >= deadline) {
            p->comm->abort();
            fail(Errc::kTimeout,
                 "nccl: the first transfer with peer {} did not complete within {} ms; the "
                 "communicator was aborted",
                 peer, timeout.count());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    logger("nccl")->info("paired with {} as its {} (GPU {})", peer, writer ? "writer" : "receiver",
                         device_);
    pairs_[peer] = std::move(p);
}

NcclBackend::Pair &NcclBackend::live(const std::string &peer, bool writer) {
    const auto it = pairs_.find(peer);
    check(it != pairs_.end(), Errc::kNotFound, "nccl: no pair with peer {} (pair() first)", peer);
    Pair &p = *it->second;
    check(!p.comm->aborted(), Errc::kPeerLost,
          "nccl: the communicator with peer {} was aborted after a failed transfer; NCCL pairs "
          "are formed once per job (restart the job to use it again)",
          peer);
    check((p.rank == 0) == writer, Errc::kInvalidArgument, "nccl: this process {} peer {}",
          writer ? "receives from, and cannot write to," : "writes to, and cannot receive from,",
          peer);
    return p;
}

void NcclBackend::postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                            size_t target_offset, size_t length) {
    const auto *local = dynamic_cast<const NcclLocalRegion *>(&source);
    check(local != nullptr && local->owner() == this, Errc::kInvalidArgument,
          "nccl: the source region was not registered with this backend");
    const auto *remote = dynamic_cast<const NcclRemoteRegion *>(&target);
    check(remote != nullptr && remote->owner() == this, Errc::kInvalidArgument,
          "nccl: the target region was not imported by this backend");
    check(fits(source_offset, length, local->size()), Errc::kInvalidArgument,
          "nccl: source range [{}, +{}) exceeds the local region of {} bytes", source_offset,
          length, local->size());
    check(fits(target_offset, length, remote->size()), Errc::kInvalidArgument,
          "nccl: target range [{}, +{}) exceeds the region of {} bytes of peer {}", target_offset,
          length, remote->size(), remote->peer());
    Pair &p = live(remote->peer(), /*writer=*/true);
    if (length == 0) return;
    queued_.push_back(
        {&p, static_cast<const std::byte *>(local->data()) + source_offset, nullptr, length});
    unflushed_.writes += 1;
    unflushed_.bytes += length;
}

void NcclBackend::postReceive(const LocalRegion &target, size_t offset, const std::string &peer,
                              size_t length) {
    const auto *local = dynamic_cast<const NcclLocalRegion *>(&target);
    check(local != nullptr && local->owner() == this, Errc::kInvalidArgument,
          "nccl: the target region was not registered with this backend");
    check(fits(offset, length, local->size()), Errc::kInvalidArgument,
          "nccl: receive range [{}, +{}) exceeds the local region of {} bytes", offset, length,
          local->size());
    Pair &p = live(peer, /*writer=*/false);
    if (length == 0) return;
    queued_.push_back({&p, nullptr, static_cast<std::byte *>(local->data()) + offset, length});
    unflushed_.writes += 1;
    unflushed_.bytes += length;
}

void NcclBackend::failPairs(const std::vector<Pair *> &pairs, Errc code,
                            const std::string &message) {
    for (Pair *p : pairs) p->comm->abort();
    for (auto &[_, p] : pairs_) p->busy = false;
    queued_.clear();
    unflushed_ = {};
    throw Error(code, message);
}

void NcclBackend::submit() {
    if (queued_.empty()) return;
    const std::vector<Op> ops = std::exchange(queued_, {});
    std::vector<Pair *> involved;
    for (const Op &op : ops) {
        if (std::find(involved.begin(), involved.end(), op.pair) == involved.end()) {
            involved.push_back(op.pair);
        }
    }
    std::vector<std::string> peers;
    for (const auto &[name, p] : pairs_) {
        if (std::find(involved.begin(), involved.end(), p.get()) != involved.end()) {
            peers.push_back(name);
        }
    }
    platform::DeviceGuard guard(device_);
    ncclResult_t r = ncclGroupStart();
    if (r == ncclSuccess) {
        for (const Op &op : ops) {
            const int other = 1 - op.pair->rank;
            r = op.send != nullptr ? ncclSend(op.send, op.bytes, ncclUint8, other,
                                              op.pair->comm->get(), op.pair->stream.get())
                                   : ncclRecv(op.recv, op.bytes, ncclUint8, other,
                                              op.pair->comm->get(), op.pair->stream.get());
            if (r != ncclSuccess && r != ncclInProgress) break;
        }
        const ncclResult_t end = ncclGroupEnd();  // closes the group also after a failed call
        if (r == ncclSuccess || r == ncclInProgress) r = end;
    }
    if (r != ncclSuccess && r != ncclInProgress) {
        failPairs(involved, ncclErrc(r),
                  fmt::format("nccl: posting {} transfers with peer(s) {} failed: {}; their "
                              "communicators were aborted",
                              ops.size(), fmt::join(peers, ", "),
                              ncclText(r, involved.front()->comm->get())));
    }
    const auto deadline = Clock::now() + options_.post_timeout;
    for (Pair *p : involved) {
        try {
            p->comm->await(deadline, "posting a batch");
        } catch (const Error &e) {
            failPairs(involved, e.code(), e.what());
        }
        p->busy = true;
    }
}

FlushStats NcclBackend::flush(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    submit();
    platform::DeviceGuard guard(device_);
    std::vector<Pair *> pending;
    std::vector<std::string> names;
    std::map<Pair *, std::string> name_of;
    for (auto &[name, p] : pairs_) {
        if (!p->busy) continue;
        p->done.record(p->stream.get());
        pending.push_back(p.get());
        name_of[p.get()] = name;
    }
    // A pair whose transfers completed stays; a failed one, and every one still in flight when
    // something failed or the deadline passed, is aborted (its transfers are in doubt).
    std::vector<Pair *> failed;
    std::vector<std::string> failures;
    Errc code = Errc::kTransport;
    while (!pending.empty()) {
        std::erase_if(pending, [&](Pair *p) {
            const ncclResult_t s = p->comm->state();
            if (s != ncclSuccess && s != ncclInProgress) {
                failures.push_back(fmt::format("{}: {}", name_of[p], ncclText(s, p->comm->get())));
                if (ncclErrc(s) == Errc::kPeerLost) code = Errc::kPeerLost;
                failed.push_back(p);
                return true;
            }
            try {
                return p->done.query();
            } catch (const Error &e) {
                failures.push_back(fmt::format("{}: {}", name_of[p], e.what()));
                failed.push_back(p);
                return true;
            }
        });
        if (!failures.empty()) {
            failed.insert(failed.end(), pending.begin(), pending.end());
            failPairs(failed, code,
                      fmt::format("nccl: transfers failed with peer(s) {}; the communicators of "
                                  "the pairs in doubt were aborted",
                                  fmt::join(failures, "; ")));
        }
        if (pending.empty()) break;
        if (Clock::now() >= deadline) {
            for (Pair *p : pending) names.push_back(name_of[p]);
            failPairs(pending, Errc::kTimeout,
                      fmt::format("nccl: flush timed out after {} ms; peer(s) with transfers "
                                  "outstanding: {} (their communicators were aborted)",
                                  timeout.count(), fmt::join(names, ", ")));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    for (auto &[_, p] : pairs_) p->busy = false;
    return std::exchange(unflushed_, {});
}

}  // namespace nccl

std::unique_ptr<TransportBackend> makeNcclBackend(const NcclOptions &options) {
    return std::make_unique<nccl::NcclBackend>(options);
}

}  // namespace weightsync::transport
