#pragma once
// Helpers for memory shared between processes on one host: whether a range is a shared mapping,
// pre-faulting, and the copy used for direct writes into a peer's mapped segment.

#include <cstddef>

namespace weightsync::transport::ucx {

/// Whether [ptr, ptr+length) lies entirely in MAP_SHARED mappings of this process (per
/// /proc/self/maps), i.e. memory another process can map too (sysv or posix shared memory).
bool isSharedMapping(const void *ptr, size_t length);

/// Maps every page of [ptr, ptr+length) writable into this process's page table (allocating the
/// pages of a fresh segment), so that no later write takes a page fault. Never modifies the
/// contents: the range may hold a peer's live data. MADV_POPULATE_WRITE (Linux 5.14+), else a
/// read of every page. False when the pages cannot be had (e.g. /dev/shm is too small): a write
/// there would raise SIGBUS.
[[nodiscard]] bool prefault(void *ptr, size_t length);

/// memcpy for a target in another process's shared segment. Large copies use non-temporal
/// stores: the bytes are for the peer, so they should not displace this process's cache, and
/// streaming stores skip the read-for-ownership of every target line. Ends with a store fence.
void copyToShared(void *dst, const void *src, size_t length);

}  // namespace weightsync::transport::ucx
