#include "transport/inproc/inproc_backend.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>

namespace weightsync::transport {
namespace {

constexpr const char *kName = "inproc";

struct LiveRegion {
    uint64_t owner = 0;  // backend id
    uintptr_t base = 0;
    size_t length = 0;
};

/// Regions registered by any InprocBackend of this process, keyed by region id.
struct LiveRegions {
    std::mutex mutex;
    std::unordered_map<uint64_t, LiveRegion> regions;
};

LiveRegions &liveRegions() {
    static LiveRegions table;
    return table;
}

uint64_t nextId() {
    static std::atomic<uint64_t> counter{1};
    return counter.fetch_add(1);
}

class InprocLocalRegion final : public LocalRegion {
  public:
    InprocLocalRegion(uint64_t owner, uint64_t generation, void *ptr, size_t length)
        : id_(nextId()), generation_(generation), ptr_(ptr), length_(length) {
        auto &table = liveRegions();
        std::lock_guard lock(table.mutex);
        table.regions[id_] = LiveRegion{owner, reinterpret_cast<uintptr_t>(ptr), length};
    }
    ~InprocLocalRegion() override {
        auto &table = liveRegions();
        std::lock_guard lock(table.mutex);
        table.regions.erase(id_);
    }

    [[nodiscard]] void *data() const override { return ptr_; }
    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] RemoteDescriptor describe() const override {
        RemoteDescriptor d;
        d.backend = kName;
        d.address = reinterpret_cast<uintptr_t>(ptr_);
        d.length = length_;
        d.generation = generation_;
        d.key = std::to_string(id_);
        return d;
    }

  private:
    uint64_t id_;
    uint64_t generation_;
    void *ptr_;
    size_t length_;
};

class InprocRemoteRegion final : public RemoteRegion {
  public:
    InprocRemoteRegion(std::string peer, uint64_t region_id, uintptr_t base, size_t length)
        : peer_(std::move(peer)), region_id_(region_id), base_(base), length_(length) {}

    [[nodiscard]] size_t size() const override { return length_; }
    [[nodiscard]] const std::string &peer() const override { return peer_; }
    [[nodiscard]] uint64_t regionId() const { return region_id_; }
    [[nodiscard]] uintptr_t base() const { return base_; }

  private:
    std::string peer_;
    uint64_t region_id_;
    uintptr_t base_;
    size_t length_;
};

bool fits(size_t offset, size_t length, size_t size) {
    return offset <= size && length <= size - offset;
}

}  // namespace

InprocBackend::InprocBackend() : id_(nextId()), generation_(std::random_device{}()) {
    capabilities_.name = kName;
    capabilities_.host_memory = true;
}

std::string InprocBackend::address() const {
    return fmt::format("inproc:{}:{}", ::getpid(), id_);
}

std::unique_ptr<LocalRegion> InprocBackend::registerMemory(void *ptr, size_t length,
                                                           MemoryKind kind, int device) {
    check(kind == MemoryKind::kHost, Errc::kUnsupported,
          "inproc: only host memory can be registered");
    check(device == -1, Errc::kInvalidArgument, "inproc: host memory with device {}", device);
    check(ptr != nullptr && length > 0, Errc::kInvalidArgument,
          "inproc: cannot register an empty range");
    return std::make_unique<InprocLocalRegion>(id_, generation_, ptr, length);
}

void InprocBackend::connect(const std::string &peer_name, const std::string &peer_address) {
    long pid = 0;
    unsigned long long peer_id = 0;
    int consumed = 0;
    const int parsed =
        std::sscanf(peer_address.c_str(), "inproc:%ld:%llu%n", &pid, &peer_id, &consumed);
    check(parsed == 2 && static_cast<size_t>(consumed) == peer_address.size(),
          Errc::kInvalidArgument, "inproc: '{}' is not an inproc address (peer {})", peer_address,
          peer_name);
    check(pid == ::getpid(), Errc::kInvalidArgument,
          "inproc: peer {} lives in process {}, not this one", peer_name, pid);
    peers_[peer_name] = peer_id;
}

std::unique_ptr<RemoteRegion> InprocBackend::importRegion(const std::string &peer_name,
                                                          const RemoteDescriptor &descriptor) {
    check(descriptor.backend == kName, Errc::kMismatch,
          "inproc: descriptor from backend '{}' (peer {})", descriptor.backend, peer_name);
    const auto peer = peers_.find(peer_name);
    check(peer != peers_.end(), Errc::kNotFound, "inproc: peer {} is not connected", peer_name);
    uint64_t region_id = 0;
    try {
        region_id = std::stoull(descriptor.key);
    } catch (const std::exception &) {
        fail(Errc::kInvalidArgument, "inproc: malformed key in descriptor of peer {}", peer_name);
    }
    auto &table = liveRegions();
    std::lock_guard lock(table.mutex);
    const auto it = table.regions.find(region_id);
    check(it != table.regions.end(), Errc::kPeerLost,
          "inproc: region {} of peer {} is no longer registered", region_id, peer_name);
    const LiveRegion &live = it->second;
    check(live.owner == peer->second, Errc::kMismatch,
          "inproc: descriptor does not belong to peer {}", peer_name);
    check(live.base == descriptor.address && live.length == descriptor.length, Errc::kMismatch,
          "inproc: descriptor of peer {} disagrees with the registered region", peer_name);
    return std::make_unique<InprocRemoteRegion>(peer_name, region_id, live.base, live.length);
}

void InprocBackend::postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                              size_t target_offset, size_t length) {
    const auto *remote = dynamic_cast<const InprocRemoteRegion *>(&target);
    check(remote != nullptr, Errc::kInvalidArgument,
          "inproc: target region was not imported by an inproc backend");
    check(fits(source_offset, length, source.size()), Errc::kInvalidArgument,
          "inproc: source range [{}, +{}) exceeds the local region of {} bytes", source_offset,
          length, source.size());
    check(fits(target_offset, length, remote->size()), Errc::kInvalidArgument,
          "inproc: target range [{}, +{}) exceeds the region of {} bytes of peer {}", target_offset,
          length, remote->size(), remote->peer());
    auto &table = liveRegions();
    std::lock_guard lock(table.mutex);
    check(table.regions.contains(remote->regionId()), Errc::kPeerLost,
          "inproc: the target region of peer {} was deregistered", remote->peer());
    // One address space: a region's descriptor address is its pointer.
    std::memcpy(reinterpret_cast<void *>(  // NOLINT(performance-no-int-to-ptr)
                    remote->base() + target_offset),
                static_cast<const char *>(source.data()) + source_offset, length);
    pending_.writes += 1;
    pending_.bytes += length;
}

FlushStats InprocBackend::flush(std::chrono::milliseconds /*timeout*/) {
    const FlushStats done = pending_;
    pending_ = {};
    return done;
}

}  // namespace weightsync::transport
