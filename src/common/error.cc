#include "common/error.h"

namespace weightsync {

std::string_view errcName(Errc code) {
    switch (code) {
        case Errc::kInvalidArgument: return "invalid argument";
        case Errc::kNotFound: return "not found";
        case Errc::kMismatch: return "mismatch";
        case Errc::kUnsupported: return "unsupported";
        case Errc::kTimeout: return "timeout";
        case Errc::kPeerLost: return "peer lost";
        case Errc::kTransport: return "transport";
        case Errc::kProtocol: return "protocol";
        case Errc::kIo: return "io";
        case Errc::kCorruption: return "corruption";
        case Errc::kUnauthenticated: return "unauthenticated";
        case Errc::kInternal: return "internal";
    }
    return "unknown";
}

Error::Error(Errc code, const std::string &message)
    : std::runtime_error(std::string(errcName(code)) + ": " + message), code_(code) {}

}  // namespace weightsync
