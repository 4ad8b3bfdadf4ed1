#include "transport/ucx/ucx_backend_impl.h"

#include "common/log.h"
#include "transport/ucx/ucx_shm.h"
#include "transport/ucx/ucx_status.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

namespace weightsync::transport {
namespace ucx {
namespace {

constexpr std::string_view kName = "ucx";
constexpr std::string_view kAddressMagic = "WSUCX1:";  // prefix of address() blobs
constexpr int kIdlePollMs = 10;  // longest sleep of the progress thread on the event fd
constexpr std::chrono::microseconds kSpinAfterWork{1000};  // before the progress thread sleeps
constexpr int kProgressBatch = 64;  // worker progress calls per lock hold in the progress thread
constexpr std::chrono::seconds kShutdownDrain{1};
constexpr std::chrono::milliseconds kCancelDrain{200};  // for requests of force-closed peers

uint64_t randomGeneration() {
    std::random_device device;
    const auto now =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return ((uint64_t{device()} << 32) | device()) ^ now;
}

bool fits(size_t offset, size_t length, size_t size) {
    return offset <= size && length <= size - offset;
}

std::string peerNames(const std::vector<std::shared_ptr<UcxEndpoint>> &peers) {
    std::vector<std::string> names;
    names.reserve(peers.size());
    for (const auto &peer : peers) names.push_back(peer->peer());
    return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

UcxBackend::UcxBackend(UcxOptions options)
    : options_(std::move(options)),
      generation_(randomGeneration()),
      log_(logger("ucx")),
      core_(std::make_shared<UcxCore>(options_)) {
    check(options_.max_inflight_bytes > 0 && options_.max_inflight_writes > 0 &&
              options_.max_write_size > 0,
          Errc::kInvalidArgument, "ucx: in-flight limits and the write size must be positive");
    capabilities_.name = kName;
    capabilities_.host_memory = true;
    capabilities_.cuda_memory = core_->context.cudaMemory();
    capabilities_.needs_target_progress = true;
}

UcxBackend::~UcxBackend() {
    stopProgressThread();
    std::lock_guard lock(core_->mutex);
    if (!inflight_.empty()) {
        log_->warn("destroying the backend with {} unflushed writes; cancelling them",
                   inflight_.count());
        for (const auto &peer : inflight_.peers()) {
            peer->recordFailure(UCS_ERR_CANCELED, "backend destroyed");
            peer->closeIfFailed();
        }
        progressUntil([this] { return inflight_.empty(); }, Clock::now() + kShutdownDrain);
        inflight_.releaseAll();
    }
}

std::string UcxBackend::address() const {
    address_given_.store(true);
    std::lock_guard lock(core_->mutex);
    return std::string(kAddressMagic) + core_->worker->address();
}

std::unique_ptr<LocalRegion> UcxBackend::registerMemory(void *ptr, size_t length, MemoryKind kind,
                                                        int device) {
    check(ptr != nullptr && length > 0, Errc::kInvalidArgument,
          "ucx: cannot register an empty range");
    if (kind == MemoryKind::kCuda) {
        check(capabilities_.cuda_memory, Errc::kUnsupported,
              "ucx: {} cannot register CUDA memory (UCS_MEMORY_TYPE_CUDA is not among its "
              "memory types; host-only builds such as Debian's libucx lack it). Use a "
              "CUDA-enabled UCX, e.g. PyPI libucx-cu13, via -DWEIGHTSYNC_UCX_ROOT=<its prefix>",
              UcxContext::versionString());
        check(device >= 0, Errc::kInvalidArgument, "ucx: CUDA memory with device {}", device);
    } else {
        check(device == -1, Errc::kInvalidArgument, "ucx: host memory with device {}", device);
    }
    return std::make_unique<UcxLocalRegion>(core_, ptr, length, kind, device, generation_);
}

std::unique_ptr<LocalRegion> UcxBackend::allocateMemory(size_t length, MemoryKind kind,
                                                        int device) {
    check(length > 0, Errc::kInvalidArgument, "ucx: cannot allocate an empty range");
    // UCX would allocate CUDA memory with cudaMalloc: nothing better than the caller's own.
    if (kind != MemoryKind::kHost) return nullptr;
    check(device == -1, Errc::kInvalidArgument, "ucx: host memory with device {}", device);
    std::unique_ptr<LocalRegion> region;
    {
        std::lock_guard lock(core_->mutex);
        auto memory = UcxMemory::allocate(core_->context.get(), length);
        if (!isSharedMapping(memory->address(), length)) {
            // No sysv/posix transport loaded (e.g. "tcp,self"): UCX fell back to private memory.
            log_->info(
                "allocateMemory: UCX has no shared memory to offer (transports '{}'); use "
                "your own memory with registerMemory",
                options_.transports);
            return nullptr;
        }
        region = std::make_unique<UcxLocalRegion>(core_, std::move(memory), length, generation_);
    }
    // Outside the mutex: may take a while for large arenas.
    if (!prefault(region->data(), length)) {
        log_->warn(
            "allocateMemory: cannot back {} bytes of shared memory ({}; is /dev/shm or the "
            "shm limit too small?); use your own memory with registerMemory",
            length, std::strerror(errno));
        return nullptr;
    }
    return region;
}

void UcxBackend::connect(const std::string &peer_name, const std::string &peer_address) {
    check(!peer_name.empty(), Errc::kInvalidArgument, "ucx: empty peer name");
    check(peer_address.size() > kAddressMagic.size() && peer_address.starts_with(kAddressMagic),
          Errc::kInvalidArgument, "ucx: the address of peer {} ({} bytes) is not a UCX address",
          peer_name, peer_address.size());
    std::string worker_address = peer_address.substr(kAddressMagic.size());
    bool renew = false;
    {
        std::lock_guard lock(core_->mutex);
        const auto it = peers_.find(peer_name);
        if (it != peers_.end()) {
            const auto &old = it->second;
            if (old->usable() && old->workerAddress() == worker_address) return;
            const bool failed = !old->usable();
            log_->info("reconnecting to peer {} ({})", peer_name,
                       failed ? "after a failure" : "new address");
            if (old->dirty()) old->recordFailure(UCS_ERR_CANCELED, "replaced by a reconnect");
            old->retire();
            renew = failed && !address_given_.load() &&
                    std::none_of(peers_.begin(), peers_.end(),
                                 [](const auto &entry) { return entry.second->usable(); });
        }
    }
    if (renew) renewWorker();
    std::lock_guard lock(core_->mutex);
    peers_[peer_name] = std::make_shared<UcxEndpoint>(core_, peer_name, std::move(worker_address));
}

void UcxBackend::renewWorker() {
    // The progress thread holds no reference to the worker while stopped.
    const bool threaded = progress_thread_.joinable();
    stopProgressThread();
    {
        std::lock_guard lock(core_->mutex);
        progressUntil([this] { return inflight_.empty(); }, Clock::now() + kCancelDrain);
        if (inflight_.empty()) {
            core_->renewWorker();
            log_->info("continuing on a fresh UCX worker (every peer had failed)");
        } else {
            log_->warn("keeping the UCX worker: {} writes of failed peers are still outstanding",
                       inflight_.count());
        }
    }
    if (threaded) startProgressThread();
}

std::unique_ptr<RemoteRegion> UcxBackend::importRegion(const std::string &peer_name,
                                                       const RemoteDescriptor &descriptor) {
    check(descriptor.backend == kName, Errc::kMismatch,
          "ucx: peer {} described a region of backend '{}'", peer_name, descriptor.backend);
    check(descriptor.length > 0 && !descriptor.key.empty(), Errc::kInvalidArgument,
          "ucx: the descriptor from peer {} has no length or no key", peer_name);
    std::lock_guard lock(core_->mutex);
    const auto it = peers_.find(peer_name);
    check(it != peers_.end(), Errc::kNotFound, "ucx: peer {} is not connected", peer_name);
    checkUsable(*it->second);
    return std::make_unique<UcxRemoteRegion>(it->second, descriptor, options_.prefault_imports);
}

void UcxBackend::postWrite(const LocalRegion &source, size_t source_offset, RemoteRegion &target,
                           size_t target_offset, size_t length) {
    const auto *local = dynamic_cast<const UcxLocalRegion *>(&source);
    check(local != nullptr && local->core() == core_.get(), Errc::kInvalidArgument,
          "ucx: the source region was not registered with this backend");
    auto *remote = dynamic_cast<UcxRemoteRegion *>(&target);
    check(remote != nullptr && remote->endpoint()->core() == core_, Errc::kInvalidArgument,
          "ucx: the target region was not imported by this backend");
    check(fits(source_offset, length, local->size()), Errc::kInvalidArgument,
          "ucx: source range [{}, +{}) exceeds the local region of {} bytes", source_offset, length,
          local->size());
    check(fits(target_offset, length, remote->size()), Errc::kInvalidArgument,
          "ucx: target range [{}, +{}) exceeds the region of {} bytes of peer {}", target_offset,
          length, remote->size(), remote->peer());
    if (length == 0) return;

    std::unique_lock lock(core_->mutex);
    const auto &endpoint = remote->endpoint();
    checkUsable(*endpoint);
    if (!endpoint->dirty()) {
        endpoint->setDirty(true);
        dirty_.push_back(endpoint);
    }
    if (options_.direct_copy && remote->direct() != nullptr) {
        // The peer's shared segment is mapped here: a plain copy, complete when it returns, with
        // no request and nothing for the peer to do. Outside the mutex, so a progress thread of
        // this process keeps running.
        lock.unlock();
        copyToShared(remote->direct() + target_offset,
                     static_cast<const char *>(local->data()) + source_offset, length);
    } else {
        const size_t chunk_limit = std::min(options_.max_write_size, options_.max_inflight_bytes);
        for (size_t done = 0; done < length;) {
            const size_t chunk = std::min(chunk_limit, length - done);
            putChunk(*local, source_offset + done, *remote, target_offset + done, chunk);
            done += chunk;
        }
    }
    unflushed_.writes += 1;
    unflushed_.bytes += length;
}

void UcxBackend::putChunk(const UcxLocalRegion &source, size_t source_offset,
                          UcxRemoteRegion &target, size_t target_offset, size_t length) {
    const bool room = progressUntil(
        [&] {
            return inflight_.count() < options_.max_inflight_writes &&
                   (inflight_.empty() || inflight_.bytes() + length <= options_.max_inflight_bytes);
        },
        Clock::now() + options_.post_timeout);
    if (!room) failTimeout(inflight_.peers(), "waiting for in-flight room", options_.post_timeout);
    const auto &endpoint = target.endpoint();
    checkUsable(*endpoint);

    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMH;
    param.memh = source.memh();
    void *request =
        ucp_put_nbx(endpoint->handle(), static_cast<const char *>(source.data()) + source_offset,
                    length, target.address() + target_offset, target.rkey(), &param);
    ++puts_since_mark_;
    if (request == nullptr) return;  // completed in place
    if (UCS_PTR_IS_ERR(request)) {
        const ucs_status_t status = UCS_PTR_STATUS(request);
        endpoint->recordFailure(status, "ucp_put_nbx");
        endpoint->closeIfFailed();
        fail(errcFor(status), "ucx: write of {} bytes to peer {} failed: {}", length,
             endpoint->peer(), ucs_status_string(status));
    }
    inflight_.add(request, endpoint, length);
}

std::optional<uint64_t> UcxBackend::mark() {
    std::lock_guard lock(core_->mutex);
    const uint64_t mark = ++marks_;
    if (puts_since_mark_ == 0 && mark_requests_.empty()) {
        reached_ = mark;  // only direct copies (or nothing) since the last reached mark
        return mark;
    }
    void *request = nullptr;
    if (puts_since_mark_ > 0) {
        ucp_request_param_t param{};
        request = ucp_worker_flush_nbx(core_->worker->get(), &param);
        if (UCS_PTR_IS_ERR(request)) {
            // Never reached before flush(), which reports what failed.
            mark_requests_.emplace_back(mark, UCS_STATUS_PTR(UCS_ERR_NO_MESSAGE));
            puts_since_mark_ = 0;
            return mark;
        }
        if (request == nullptr) {
            puts_since_mark_ = 0;
            if (mark_requests_.empty()) {
                reached_ = mark;
            } else {
                mark_requests_.emplace_back(mark, nullptr);
            }
            return mark;
        }
    }
    puts_since_mark_ = 0;
    mark_requests_.emplace_back(mark, request);
    return mark;
}

TransportBackend::MarkState UcxBackend::markState(uint64_t mark) {
    if (mark <= reached_) return MarkState::kReached;
    if (mark <= flushed_ || mark > marks_) return MarkState::kFailed;
    std::lock_guard lock(core_->mutex);
    (void)core_->worker->progress();
    inflight_.reap();
    while (!mark_requests_.empty()) {
        auto &[m, request] = mark_requests_.front();
        if (request != nullptr) {
            if (UCS_PTR_IS_ERR(request)) return MarkState::kFailed;  // flush() says why
            const ucs_status_t status = ucp_request_check_status(request);
            if (status == UCS_INPROGRESS) break;
            ucp_request_free(request);
            request = nullptr;
            if (status != UCS_OK) {
                request = UCS_STATUS_PTR(status);
                return MarkState::kFailed;
            }
        }
        reached_ = m;
        mark_requests_.pop_front();
    }
    return mark <= reached_ ? MarkState::kReached : MarkState::kPending;
}

FlushStats UcxBackend::flush(std::chrono::milliseconds timeout) {
    std::lock_guard lock(core_->mutex);
    const auto deadline = Clock::now() + timeout;
    // A flush consumes the epoch: it returns its stats or reports its failures, once.
    const auto dirty = std::exchange(dirty_, {});
    const FlushStats stats = std::exchange(unflushed_, {});
    for (const auto &peer : dirty) peer->setDirty(false);
    // Marks: their requests are released here; they are reached once this flush returns.
    const uint64_t marked = marks_;
    flushed_ = marked;
    for (auto &[m, request] : std::exchange(mark_requests_, {})) {
        if (request != nullptr && !UCS_PTR_IS_ERR(request)) ucp_request_free(request);
    }
    puts_since_mark_ = 0;

    // 1. Local completion of every posted write.
    if (!progressUntil([this] { return inflight_.empty(); }, deadline)) {
        failTimeout(inflight_.peers(), "flush", timeout);
    }
    // 2. Remote completion, per peer, so that a failure or a timeout names its peer.
    std::vector<std::pair<std::shared_ptr<UcxEndpoint>, void *>> flushes;
    for (const auto &peer : dirty) {
        if (!peer->usable()) continue;
        ucp_request_param_t param{};
        void *request = ucp_ep_flush_nbx(peer->handle(), &param);
        if (UCS_PTR_IS_ERR(request)) {
            peer->recordFailure(UCS_PTR_STATUS(request), "ucp_ep_flush_nbx");
        } else if (request != nullptr) {
            flushes.emplace_back(peer, request);
        }
    }
    const bool flushed = progressUntil(
        [&] {
            std::erase_if(flushes, [](const auto &entry) {
                const ucs_status_t status = ucp_request_check_status(entry.second);
                if (status == UCS_INPROGRESS) return false;
                if (status != UCS_OK) entry.first->recordFailure(status, "flush");
                ucp_request_free(entry.second);
                return true;
            });
            return flushes.empty();
        },
        deadline);
    if (!flushed) {
        std::vector<std::shared_ptr<UcxEndpoint>> late;
        for (const auto &[peer, request] : flushes) {
            ucp_request_free(request);
            late.push_back(peer);
        }
        failTimeout(late, "flush", timeout);
    }
    // 3. Peers that lost writes since the last flush.
    std::vector<std::string> lost;
    bool peer_failure = false;
    for (const auto &peer : dirty) {
        if (peer->failure() == UCS_OK && !peer->retired()) continue;
        const ucs_status_t status = peer->failure() != UCS_OK ? peer->failure() : UCS_ERR_CANCELED;
        peer_failure = peer_failure || isPeerFailure(status);
        lost.push_back(fmt::format("{} ({})", peer->peer(), ucs_status_string(status)));
    }
    if (!lost.empty()) {
        fail(peer_failure ? Errc::kPeerLost : Errc::kTransport,
             "ucx: writes to peer(s) {} failed; the {} writes ({} bytes) posted since the last "
             "flush are in doubt",
             fmt::join(lost, ", "), stats.writes, stats.bytes);
    }
    reached_ = std::max(reached_, marked);
    return stats;
}

bool UcxBackend::progressUntil(const std::function<bool()> &done, Clock::time_point deadline) {
    while (true) {
        const unsigned events = core_->worker->progress();
        inflight_.reap();
        closeFailedEndpoints();
        if (done()) return true;
        if (Clock::now() >= deadline) return false;
        if (events == 0) std::this_thread::yield();  // let the peer (maybe on this core) run
    }
}

void UcxBackend::closeFailedEndpoints() {
    for (const auto &[name, peer] : peers_) peer->closeIfFailed();
}

void UcxBackend::checkUsable(const UcxEndpoint &peer) const {
    check(!peer.retired(), Errc::kPeerLost,
          "ucx: peer {} was reconnected since this region was imported; import it again",
          peer.peer());
    if (peer.failure() != UCS_OK) {
        fail(errcFor(peer.failure()), "ucx: peer {} failed: {}; reconnect to use it again",
             peer.peer(), ucs_status_string(peer.failure()));
    }
    check(peer.handle() != nullptr, Errc::kPeerLost, "ucx: the endpoint to peer {} is closed",
          peer.peer());
}

void UcxBackend::failTimeout(const std::vector<std::shared_ptr<UcxEndpoint>> &peers,
                             std::string_view what, std::chrono::milliseconds timeout) {
    // Late writes must never land after the caller gave up: close the endpoints, which
    // cancels their outstanding requests (reaped by the next call).
    for (const auto &peer : peers) {
        peer->recordFailure(UCS_ERR_ENDPOINT_TIMEOUT, "timed out");
        peer->closeIfFailed();
    }
    progressUntil([this] { return inflight_.empty(); }, Clock::now() + kCancelDrain);
    fail(Errc::kTimeout,
         "ucx: {} timed out after {} ms; peer(s) with writes outstanding: {} (their endpoints "
         "are closed; reconnect to use them again)",
         what, timeout.count(), peerNames(peers));
}

void UcxBackend::startProgressThread() {
    if (progress_thread_.joinable()) return;
    stop_.store(false);
    progress_thread_ = std::thread([this] { progressLoop(); });
}

void UcxBackend::stopProgressThread() {
    if (!progress_thread_.joinable()) return;
    stop_.store(true);
    {
        std::lock_guard lock(core_->mutex);
        core_->worker->signal();
    }
    progress_thread_.join();
}

void UcxBackend::progressLoop() {
    // Spin (yielding the CPU) while work arrives and for kSpinAfterWork after it stops, then arm
    // the worker and sleep on its event fd. Yielding matters: on a small machine a thread that
    // spins without yielding starves the peer it waits for. The poll timeout is a safety net
    // for events the fd does not report (e.g. send resources freed by the peer).
    int fd = core_->worker->eventFd();
    auto last_work = Clock::now();
    try {
        while (!stop_.load()) {
            bool sleep = false;
            {
                std::lock_guard lock(core_->mutex);
                bool worked = false;
                for (int i = 0; i < kProgressBatch && core_->worker->progress() > 0; ++i) {
                    worked = true;
                }
                const auto now = Clock::now();
                if (worked) last_work = now;
                if (fd >= 0 && now - last_work >= kSpinAfterWork) {
                    const ucs_status_t status = core_->worker->arm();
                    sleep = status == UCS_OK;
                    if (status != UCS_OK && status != UCS_ERR_BUSY) {
                        log_->warn("ucp_worker_arm: {}; busy-polling from now on",
                                   ucs_status_string(status));
                        fd = -1;
                    }
                }
            }
            if (sleep) {
                pollfd entry{fd, POLLIN, 0};
                ::poll(&entry, 1, kIdlePollMs);
            } else {
                std::this_thread::yield();
            }
        }
    } catch (const std::exception &e) {
        log_->error("progress thread stopped: {}", e.what());
    }
}

}  // namespace ucx

std::unique_ptr<TransportBackend> makeUcxBackend(const UcxOptions &options) {
    return std::make_unique<ucx::UcxBackend>(options);
}

}  // namespace weightsync::transport
