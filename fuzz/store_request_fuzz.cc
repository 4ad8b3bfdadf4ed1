// The coordinator's side of the store wire: the bytes a client sends (frames of JSON requests)
// through FrameReader and handleRequest, exactly as TcpStoreServer runs them, against a fresh
// MemoryStore. The input is the byte stream; its first byte picks how it is cut into reads.
// Properties: nothing but weightsync::Error escapes; every request gets exactly one reply, and
// every reply is a JSON object the client can read.

#include "control/frame.h"
#include "control/store_service.h"
#include "control/wire.h"
#include "fuzz/fuzz_util.h"

#include <algorithm>

namespace {

using namespace weightsync;
using namespace weightsync::control;

void checkReply(const std::string &reply) {
    nlohmann::json parsed;
    fuzz::require(fuzz::accepted([&] { parsed = wire::parse(reply); }), "reply is not JSON");
    fuzz::require(parsed.contains("ok") && parsed.contains("id"), "reply without ok or id");
    (void)wire::replyStatus(parsed, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const size_t chunk = 1 + data[0] % 64;  // bytes per read, as TCP may cut them
    const std::string_view stream = fuzz::text(data + 1, size - 1);
    MemoryStore store;
    FrameReader reader(1U << 20);
    for (size_t at = 0; at < stream.size(); at += chunk) {
        if (!fuzz::accepted([&] { reader.append(stream.substr(at, chunk)); })) return 0;
        while (true) {
            std::optional<std::string> frame;
            if (!fuzz::accepted([&] { frame = reader.next(); })) return 0;
            if (!frame) break;
            PendingCall pending;
            std::optional<ConnectionWill> will;
            // A zero maximum call timeout answers every wait/watch at once (ready or timed out).
            std::optional<std::string> reply =
                handleRequest(store, *frame, std::chrono::milliseconds(0), pending, will);
            fuzz::require(reply.has_value(), "a request with a zero timeout was parked");
            checkReply(*reply);
        }
    }
    return 0;
}
