#include "transport/ucx/ucx_status.h"

namespace weightsync::transport::ucx {

bool isPeerFailure(ucs_status_t status) {
    switch (status) {
        case UCS_ERR_CONNECTION_RESET:
        case UCS_ERR_UNREACHABLE:
        case UCS_ERR_REJECTED:
        case UCS_ERR_NOT_CONNECTED:
        case UCS_ERR_CANCELED:
        case UCS_ERR_IO_ERROR: return true;
        default: return UCS_IS_ENDPOINT_ERROR(status) || UCS_IS_LINK_ERROR(status);
    }
}

Errc errcFor(ucs_status_t status) {
    return isPeerFailure(status) ? Errc::kPeerLost : Errc::kTransport;
}

void checkStatus(ucs_status_t status, Errc code, std::string_view what) {
    if (status != UCS_OK) fail(code, "ucx: {}: {}", what, ucs_status_string(status));
}

}  // namespace weightsync::transport::ucx
