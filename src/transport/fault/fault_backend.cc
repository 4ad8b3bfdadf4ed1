#include "transport/fault/fault_backend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <thread>
#include <utility>

namespace weightsync::transport {

FaultInjectingBackend::FaultInjectingBackend(std::unique_ptr<TransportBackend> inner,
                                             FaultPolicy policy)
    : inner_(std::move(inner)), policy_(std::move(policy)) {
    check(inner_ != nullptr, Errc::kInvalidArgument, "fault: no backend to wrap");
}

const Capabilities &FaultInjectingBackend::capabilities() const {
    return inner_->capabilities();
}

std::string FaultInjectingBackend::address() const {
    return inner_->address();
}

std::unique_ptr<LocalRegion> FaultInjectingBackend::registerMemory(void *ptr, size_t length,
                                                                   MemoryKind kind, int device) {
    return inner_->registerMemory(ptr, length, kind, device);
}

std::unique_ptr<LocalRegion> FaultInjectingBackend::allocateMemory(size_t length, MemoryKind kind,
                                                                   int device) {
    return inner_->allocateMemory(length, kind, device);
}

void FaultInjectingBackend::connect(const std::string &peer_name, const std::string &peer_address) {
    check(!policy_.dropped_peers.contains(peer_name), Errc::kPeerLost,
          "fault: connection to peer {} dropped (injected)", peer_name);
    inner_->connect(peer_name, peer_address);
}

std::unique_ptr<RemoteRegion> FaultInjectingBackend::importRegion(
    const std::string &peer_name, const RemoteDescriptor &descriptor) {
    return inner_->importRegion(peer_name, descriptor);
}

void FaultInjectingBackend::postWrite(const LocalRegion &source, size_t source_offset,
                                      RemoteRegion &target, size_t target_offset, size_t length) {
    const uint64_t index = ++writes_seen_;
    if (policy_.write_delay.count() > 0) std::this_thread::sleep_for(policy_.write_delay);
    const std::string &peer = target.peer();
    written_peers_.insert(peer);
    if (index == policy_.fail_write) {
        if (!policy_.fail_at_flush) {
            fail(policy_.fail_code, "fault: write #{} to peer {} failed (injected)", index, peer);
        }
        deferred_failure_ =
            fmt::format("fault: write #{} to peer {} failed (injected)", index, peer);
        return;
    }
    if (policy_.dropped_peers.contains(peer)) {
        lost_peers_.insert(peer);
        return;
    }
    if (index == policy_.lose_write) return;  // silently: no error anywhere
    if (index == policy_.corrupt_write && length > 0) {
        check(source.describe().kind == MemoryKind::kHost, Errc::kUnsupported,
              "fault: corrupting a write needs a host source");
        // A registered copy with one bit flipped goes on the wire; the source stays intact.
        bounce_.assign(static_cast<const std::byte *>(source.data()) + source_offset,
                       static_cast<const std::byte *>(source.data()) + source_offset + length);
        const uint64_t at = policy_.corrupt_byte % length;
        bounce_[at] ^= static_cast<std::byte>(1U << ((policy_.corrupt_byte / length) % 8));
        bounce_region_ = inner_->registerMemory(bounce_.data(), length, MemoryKind::kHost, -1);
        inner_->postWrite(*bounce_region_, 0, target, target_offset, length);
        return;
    }
    inner_->postWrite(source, source_offset, target, target_offset, length);
}

FlushStats FaultInjectingBackend::flush(std::chrono::milliseconds timeout) {
    if (policy_.flush_delay.count() > 0) {
        std::this_thread::sleep_for(std::min(policy_.flush_delay, timeout));
        if (policy_.flush_delay >= timeout) {
            fail(Errc::kTimeout, "fault: flush timed out after {} ms (injected); peers: {}",
                 timeout.count(), fmt::join(written_peers_, ", "));
        }
        timeout -= policy_.flush_delay;
    }
    const FlushStats stats = inner_->flush(timeout);
    written_peers_.clear();
    bounce_region_.reset();
    if (!deferred_failure_.empty()) {
        const std::string message = std::exchange(deferred_failure_, {});
        lost_peers_.clear();
        throw Error(policy_.fail_code, message);
    }
    if (!lost_peers_.empty()) {
        const std::string peers = fmt::format("{}", fmt::join(lost_peers_, ", "));
        lost_peers_.clear();
        fail(Errc::kPeerLost, "fault: writes to peer {} were lost (connection dropped, injected)",
             peers);
    }
    return stats;
}

std::optional<uint64_t> FaultInjectingBackend::mark() {
    return inner_->mark();
}

TransportBackend::MarkState FaultInjectingBackend::markState(uint64_t mark) {
    // Writes that will fail at the next flush are never reported complete before it. (A
    // corrupted or silently lost write is: it "completed", which is what checksums catch.)
    if (!lost_peers_.empty() || !deferred_failure_.empty()) return MarkState::kFailed;
    return inner_->markState(mark);
}

void FaultInjectingBackend::startProgressThread() {
    inner_->startProgressThread();
}

void FaultInjectingBackend::stopProgressThread() {
    inner_->stopProgressThread();
}

}  // namespace weightsync::transport
