#pragma once
// Mapping of UCX status codes onto weightsync error codes.

#include "common/error.h"

#include <ucs/type/status.h>

#include <string_view>

namespace weightsync::transport::ucx {

/// True for statuses that mean the peer (or the path to it) is gone.
bool isPeerFailure(ucs_status_t status);

/// kPeerLost for peer failures, kTransport otherwise.
Errc errcFor(ucs_status_t status);

/// Throws Error(code, "ucx: <what>: <status string>") unless status is UCS_OK.
void checkStatus(ucs_status_t status, Errc code, std::string_view what);

}  // namespace weightsync::transport::ucx
