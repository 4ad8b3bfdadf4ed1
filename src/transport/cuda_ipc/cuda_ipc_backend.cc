#include "transport/cuda_ipc/cuda_ipc_backend_impl.h"

#include "common/host.h"
#include "platform/cuda/cuda_check.h"
#include "platform/cuda/device.h"
#include "platform/cuda/memory.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

namespace weightsync::transport {
namespace cuda_ipc {
namespace {

constexpr std::string_view kName = "cuda_ipc";

bool fits(size_t offset, size_t length, size_t size) {
    return offset <= size && length <= size - offset;
}

// Strictly increasing across restarts of one owner on one host.
uint64_t wallClockGeneration() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

const CudaIpcOptions &validated(const CudaIpcOptions &options) {
    check(options.streams > 0 && options.chunk_bytes > 0, Errc::kInvalidArgument,
          "cuda_ipc: streams ({}) and chunk_bytes ({}) must be positive", options.streams,
          options.chunk_bytes);
    return options;
}

int chooseDevice(int requested) {
    const int count = platform::deviceCount();
    check(count > 0, Errc::kUnsupported,
          "cuda_ipc: no CUDA device is visible (no driver or no GPU); use ucx or inproc");
    const int device = requested >= 0 ? requested : platform::currentDevice();
    check(device < count, Errc::kInvalidArgument, "cuda_ipc: device {} requested, {} visible",
          device, count);
    return device;
}

std::string_view kindName(platform::PointerKind kind) {
    switch (kind) {
        case platform::PointerKind::kHost: return "pinned host memory";
        case platform::PointerKind::kManaged: return "managed (unified) memory";
        case platform::PointerKind::kUnregistered: return "plain host memory";
        case platform::PointerKind::kDevice: return "device memory";
    }
    return "?";
}

}  // namespace

CudaIpcBackend::CudaIpcBackend(CudaIpcOptions options)
    : options_(validated(options)),
      generation_(wallClockGeneration()),
      host_(hostIdentity()),
      core_(std::make_shared<CudaIpcCore>(chooseDevice(options.device), options.streams)) {
    uuid_ = platform::deviceUuid(core_->device);
    capabilities_.name = kName;
    capabilities_.cuda_memory = true;
    capabilities_.host_memory = false;
    capabilities_.needs_target_progress = false;
    lanes_.reserve(core_->streams.size());
    for (size_t i = 0; i < core_->streams.size(); ++i) {
        lanes_.push_back(Lane{platform::Event(core_->device), {}});
        lane_marked_.push_back(true);
    }
    core_->log->debug("GPU {} ({}), {} streams, {}-byte chunks", core_->device,
                      platform::uuidString(uuid_), options_.streams, options_.chunk_bytes);
}

CudaIpcBackend::~CudaIpcBackend() {
    if (unflushed_.writes > 0) {
        core_->log->warn("destroying the backend with {} unflushed writes; waiting for them",
                         unflushed_.writes);
    }
    core_->drain();
}

std::string CudaIpcBackend::address() const {
    return ProcessAddress{host_, ::getpid(), core_->device, uuid_}.encode();
}

std::unique_ptr<LocalRegion> CudaIpcBackend::registerMemory(void *ptr, size_t length,
                                                            MemoryKind kind, int device) {
    check(kind == MemoryKind::kCuda, Errc::kUnsupported,
          "cuda_ipc: only GPU memory can be registered (host memory goes over ucx)");
    check(ptr != nullptr && length > 0, Errc::kInvalidArgument,
          "cuda_ipc: cannot register an empty range");
    const platform::PointerInfo info = platform::pointerInfo(ptr);
    check(info.kind == platform::PointerKind::kDevice, Errc::kUnsupported,
          "cuda_ipc: {} is {}, not a cudaMalloc device allocation", static_cast<const void *>(ptr),
          kindName(info.kind));
    check(info.device == device, Errc::kInvalidArgument,
          "cuda_ipc: {} lives on GPU {}, registered as GPU {}", static_cast<const void *>(ptr),
          info.device, device);
    // The driver queries below resolve the pointer in the current context: make it the owner's.
    platform::DeviceGuard guard(device);
    check(platform::legacyIpcCapable(ptr), Errc::kUnsupported,
          "cuda_ipc: {} cannot be exported with cudaIpcGetMemHandle: it is a virtual-memory "
          "(cuMemCreate, e.g. PyTorch expandable_segments) or memory-pool allocation; allocate "
          "registered regions with plain cudaMalloc (platform::makeCudaArena)",
          static_cast<const void *>(ptr));
    const platform::AllocationRange range = platform::allocationRange(ptr);
    const auto start = reinterpret_cast<uintptr_t>(ptr);
    check(start >= range.base && fits(start - range.base, length, range.size),
          Errc::kInvalidArgument, "cuda_ipc: [{}, +{}) extends past its allocation [{:#x}, +{})",
          static_cast<const void *>(ptr), length, range.base, range.size);
    IpcKey key;
    // The driver gives the allocation's base as an integer device address (CUdeviceptr).
    void *base = reinterpret_cast<void *>(range.base);  // NOLINT(performance-no-int-to-ptr)
    platform::cudaCheck(cudaIpcGetMemHandle(&key.handle, base),
                        "cuda_ipc: cudaIpcGetMemHandle of the allocation at {:#x}", range.base);
    key.offset = start - range.base;
    key.base_size = range.size;
    key.pid = ::getpid();
    key.uuid = device == core_->device ? uuid_ : platform::deviceUuid(device);
    return std::make_unique<CudaIpcLocalRegion>(core_, ptr, length, device, generation_, key);
}

void CudaIpcBackend::connect(const std::string &peer_name, const std::string &peer_address) {
    check(!peer_name.empty(), Errc::kInvalidArgument, "cuda_ipc: empty peer name");
    ProcessAddress address = ProcessAddress::decode(peer_address, peer_name);
    check(address.host == host_, Errc::kUnsupported,
          "cuda_ipc: peer {} runs on host {}, this process on {}; CUDA IPC only connects GPUs "
          "of one host: use ucx across hosts",
          peer_name, address.host, host_);
    const auto it = peers_.find(peer_name);
    if (it != peers_.end()) {
        if (it->second.address.pid == address.pid && it->second.address.uuid == address.uuid) {
            return;
        }
        core_->log->info("peer {} reconnects from process {} (was {})", peer_name, address.pid,
                         it->second.address.pid);
        retireMappings(peer_name);
    }
    ensurePeerAccess(address.uuid, peer_name);
    peers_[peer_name] = Peer{std::move(address), 0};
}

void CudaIpcBackend::ensurePeerAccess(const platform::DeviceUuid &uuid, const std::string &peer) {
    if (uuid == uuid_ || peer_access_.contains(uuid)) return;
    const int local = platform::deviceByUuid(uuid);
    if (local < 0) {
        core_->log->info(
            "GPU {} of peer {} is not visible here; cudaIpcOpenMemHandle will map "
            "it with lazy peer access",
            platform::uuidString(uuid), peer);
    } else {
        try {
            platform::enablePeerAccess(core_->device, local);
        } catch (const Error &e) {
            fail(e.code(), "cuda_ipc: peer {}: {}", peer, e.what());
        }
        core_->log->info("peer access GPU {} -> GPU {} enabled for peer {}", core_->device, local,
                         peer);
    }
    peer_access_.insert(uuid);
}

void CudaIpcBackend::retireMappings(const std::string &peer_name) {
    for (auto it = mappings_.begin(); it != mappings_.end();) {
        if (it->first.first != peer_name) {
            ++it;
            continue;
        }
        if (auto live = it->second.lock()) live->close();
        it = mappings_.erase(it);
    }
}

std::shared_ptr<IpcMapping> CudaIpcBackend::mapping(const std::string &peer_name,
                                                    uint64_t generation, const IpcKey &key,
                                                    uint64_t owner_base) {
    std::erase_if(mappings_, [](const auto &entry) { return entry.second.expired(); });
    auto &slot = mappings_[{peer_name, key.handleBytes()}];
    if (auto live = slot.lock(); live && live->isOpen() && live->generation() == generation) {
        return live;
    }
    auto fresh = std::make_shared<IpcMapping>(core_, peer_name, generation, key, owner_base);
    slot = fresh;
    return fresh;
}

std::unique_ptr<RemoteRegion> CudaIpcBackend::importRegion(const std::string &peer_name,
                                                           const RemoteDescriptor &descriptor) {
    check(descriptor.backend == kName, Errc::kMismatch,
          "cuda_ipc: peer {} described a region of backend '{}'", peer_name, descriptor.backend);
    check(descriptor.kind == MemoryKind::kCuda && descriptor.length > 0, Errc::kInvalidArgument,
          "cuda_ipc: the descriptor from peer {} is not a non-empty GPU region", peer_name);
    const auto it = peers_.find(peer_name);
    check(it != peers_.end(), Errc::kNotFound, "cuda_ipc: peer {} is not connected", peer_name);
    Peer &peer = it->second;
    const IpcKey key = IpcKey::unpack(descriptor.key, peer_name);
    check(key.pid == peer.address.pid, Errc::kMismatch,
          "cuda_ipc: the descriptor from peer {} was made by process {}, but the peer connected "
          "as process {}",
          peer_name, key.pid, peer.address.pid);
    check(fits(key.offset, descriptor.length, key.base_size) && descriptor.address >= key.offset,
          Errc::kInvalidArgument,
          "cuda_ipc: the region [+{}, +{}) of peer {} exceeds its {}-byte allocation", key.offset,
          descriptor.length, peer_name, key.base_size);
    check(descriptor.generation >= peer.generation, Errc::kMismatch,
          "cuda_ipc: stale descriptor from peer {}: generation {}, but generation {} was already "
          "imported",
          peer_name, descriptor.generation, peer.generation);
    if (descriptor.generation > peer.generation) {
        if (peer.generation != 0) {
            core_->log->info("peer {} moved to generation {} (from {}); closing its old mappings",
                             peer_name, descriptor.generation, peer.generation);
            retireMappings(peer_name);
        }
        peer.generation = descriptor.generation;
    }
    ensurePeerAccess(key.uuid, peer_name);
    auto mapped = mapping(peer_name, descriptor.generation, key, descriptor.address - key.offset);
    return std::make_unique<CudaIpcRemoteRegion>(std::move(mapped), key.offset,
                                                 static_cast<size_t>(descriptor.length));
}

void CudaIpcBackend::postWrite(const LocalRegion &source, size_t source_offset,
                               RemoteRegion &target, size_t target_offset, size_t length) {
    const auto *local = dynamic_cast<const CudaIpcLocalRegion *>(&source);
    check(local != nullptr && local->core() == core_.get(), Errc::kInvalidArgument,
          "cuda_ipc: the source region was not registered with this backend");
    auto *remote = dynamic_cast<CudaIpcRemoteRegion *>(&target);
    check(remote != nullptr && remote->mapping().core() == core_.get(), Errc::kInvalidArgument,
          "cuda_ipc: the target region was not imported by this backend");
    check(fits(source_offset, length, local->size()), Errc::kInvalidArgument,
          "cuda_ipc: source range [{}, +{}) exceeds the local region of {} bytes", source_offset,
          length, local->size());
    check(fits(target_offset, length, remote->size()), Errc::kInvalidArgument,
          "cuda_ipc: target range [{}, +{}) exceeds the region of {} bytes of peer {}",
          target_offset, length, remote->size(), remote->peer());
    check(local->device() == core_->device, Errc::kInvalidArgument,
          "cuda_ipc: the source region is on GPU {}, the backend copies on GPU {}", local->device(),
          core_->device);
    check(remote->mapping().isOpen(), Errc::kPeerLost,
          "cuda_ipc: the region of peer {} belongs to generation {}, which was replaced or "
          "disconnected; import the peer's regions again",
          remote->peer(), remote->mapping().generation());
    if (length == 0) return;

    platform::DeviceGuard guard(core_->device);
    const auto *src = static_cast<const std::byte *>(local->data()) + source_offset;
    std::byte *dst = remote->data() + target_offset;
    for (size_t done = 0; done < length;) {
        const size_t chunk = std::min(options_.chunk_bytes, length - done);
        Lane &lane = lanes_[next_lane_];
        const platform::Stream &stream = core_->streams[next_lane_];
        next_lane_ = (next_lane_ + 1) % lanes_.size();
        platform::cudaCheck(
            cudaMemcpyAsync(dst + done, src + done, chunk, cudaMemcpyDeviceToDevice, stream.get()),
            "cuda_ipc: write of {} bytes to peer {}", chunk, remote->peer());
        lane.peers.insert(remote->peer());
        lane_marked_[static_cast<size_t>(&lane - lanes_.data())] = false;
        done += chunk;
    }
    unflushed_.writes += 1;
    unflushed_.bytes += length;
}

FlushStats CudaIpcBackend::flush(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<size_t> pending;
    try {
        for (size_t i = 0; i < lanes_.size(); ++i) {
            if (lanes_[i].peers.empty()) continue;
            lanes_[i].done.record(core_->streams[i].get());
            pending.push_back(i);
        }
        while (!pending.empty()) {
            std::erase_if(pending, [&](size_t i) { return lanes_[i].done.query(); });
            if (pending.empty()) break;
            if (std::chrono::steady_clock::now() >= deadline) {
                std::set<std::string> late;
                for (size_t i : pending)
                    late.insert(lanes_[i].peers.begin(), lanes_[i].peers.end());
                // Copies cannot be cancelled: the epoch stays open and the next flush waits again.
                fail(Errc::kTimeout,
                     "cuda_ipc: flush timed out after {} ms; peer(s) with writes outstanding: {} "
                     "(copies cannot be cancelled and may still land)",
                     timeout.count(), fmt::join(late, ", "));
            }
            std::this_thread::yield();
        }
    } catch (const Error &e) {
        if (e.code() == Errc::kTimeout) throw;
        // A failed copy poisons the context (CUDA errors of async work are sticky): every peer
        // written since the last flush is named, and the epoch ends here.
        std::set<std::string> written;
        for (const Lane &lane : lanes_) written.insert(lane.peers.begin(), lane.peers.end());
        failed_ = last_mark_;
        const FlushStats lost = endEpoch();
        fail(Errc::kTransport,
             "cuda_ipc: writes to peer(s) {} failed: {}; the {} writes ({} bytes) posted since "
             "the last flush are in doubt",
             fmt::join(written, ", "), e.what(), lost.writes, lost.bytes);
    }
    reached_ = last_mark_;
    return endEpoch();
}

std::optional<uint64_t> CudaIpcBackend::mark() {
    platform::DeviceGuard guard(core_->device);
    Mark m{++last_mark_, {}};
    for (size_t i = 0; i < lanes_.size(); ++i) {
        if (lane_marked_[i]) continue;
        if (spare_events_.empty()) {
            m.events.emplace_back(core_->device);
        } else {
            m.events.push_back(std::move(spare_events_.back()));
            spare_events_.pop_back();
        }
        m.events.back().record(core_->streams[i].get());
        lane_marked_[i] = true;
    }
    if (m.events.empty() && marks_.empty()) {
        reached_ = m.id;  // nothing copied since the last reached mark
    } else {
        marks_.push_back(std::move(m));
    }
    return last_mark_;
}

TransportBackend::MarkState CudaIpcBackend::markState(uint64_t mark) {
    if (mark <= reached_) return MarkState::kReached;
    if (mark <= failed_ || mark > last_mark_) return MarkState::kFailed;
    platform::DeviceGuard guard(core_->device);
    try {
        while (!marks_.empty()) {
            Mark &m = marks_.front();
            std::erase_if(m.events, [&](platform::Event &e) {
                if (!e.query()) return false;
                spare_events_.push_back(std::move(e));
                return true;
            });
            if (!m.events.empty()) break;
            reached_ = m.id;
            marks_.pop_front();
        }
    } catch (const Error &) {
        failed_ = last_mark_;  // a copy failed: flush() reports it
        return MarkState::kFailed;
    }
    return mark <= reached_ ? MarkState::kReached : MarkState::kPending;
}

FlushStats CudaIpcBackend::endEpoch() {
    // A flush that returned reached every mark (flush() sets reached_); a failed one none.
    for (Mark &m : marks_) {
        for (platform::Event &e : m.events) spare_events_.push_back(std::move(e));
    }
    marks_.clear();
    std::fill(lane_marked_.begin(), lane_marked_.end(), true);
    for (Lane &lane : lanes_) lane.peers.clear();
    return std::exchange(unflushed_, {});
}

}  // namespace cuda_ipc

std::unique_ptr<TransportBackend> makeCudaIpcBackend(const CudaIpcOptions &options) {
    return std::make_unique<cuda_ipc::CudaIpcBackend>(options);
}

}  // namespace weightsync::transport
