#pragma once
// The UCX (UCP) backend: one-sided puts from registered local memory into peers' registered
// memory. This header is public and carries no UCX types; the implementation lives in
// ucx_backend_impl.h and the RAII pieces (ucx_context, ucx_worker, ucx_endpoint, ucx_memory).

#include "transport/transport.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace weightsync::transport {

struct UcxOptions {
    /// UCX_TLS equivalent, e.g. "posix,sysv,self" (shared memory) or "tcp,self"; "" = UCX default.
    std::string transports;
    size_t max_inflight_bytes = size_t{256} << 20;  // posted but incomplete bytes, per backend
    size_t max_inflight_writes = 256;               // posted but incomplete requests, per backend
    size_t max_write_size = size_t{64} << 20;       // larger writes are split into chunks
    bool wakeup = true;  // progress thread sleeps on the worker's event fd (else busy-polls)
    /// Writes to a region a peer allocated with allocateMemory on this host (shared memory that
    /// this process maps, found through ucp_rkey_ptr) are copied by postWrite itself, with
    /// non-temporal stores; false = always ucp_put_nbx (also one-sided there, but slower).
    bool direct_copy = true;
    /// importRegion pre-faults this process's mapping of such a region (whole), so that no write
    /// takes a page fault; costs ~0.3 s per GiB at import. false = the first write to each page
    /// faults instead (better when this process writes only a small part of large regions).
    bool prefault_imports = true;
    std::chrono::milliseconds post_timeout{30000};  // longest postWrite waits for in-flight room
    /// Further UCX settings by their name without the UCX_ prefix, e.g. {"KEEPALIVE_INTERVAL",
    /// "1s"}.
    std::map<std::string, std::string> config;

    /// Reads {"transports", "max_inflight_bytes", "max_inflight_writes", "max_write_size",
    /// "wakeup", "direct_copy", "prefault_imports", "post_timeout_ms", "config"}; unknown keys or
    /// bad values -> kInvalidArgument.
    static UcxOptions fromJson(const nlohmann::json &json);
};

/// Creates a UCX backend. A UCX_* variable set in the environment wins over the same setting in
/// `options` (UCX reads the environment itself; options fill in only what the user left unset).
std::unique_ptr<TransportBackend> makeUcxBackend(const UcxOptions &options);

}  // namespace weightsync::transport
