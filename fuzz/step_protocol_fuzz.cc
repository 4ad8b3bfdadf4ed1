// The step protocol's messages (src/engine/protocol/messages.h), as a participant reads them from
// the store: every message type decodes the same bytes. Properties: nothing but weightsync::Error
// escapes; what decodes survives encode -> decode unchanged.

#include "engine/metrics.h"
#include "engine/protocol/messages.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace weightsync;
using namespace weightsync::engine::protocol;

template <typename Message>
void roundTrip(const std::string &text) {
    // The version field must match the key's: try the version the bytes claim, if any.
    Message m;
    for (const uint64_t version : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{1} << 63}) {
        if (fuzz::accepted([&] { m = decode<Message>(text, version, "v/x/key"); })) {
            const std::string encoded = encode(m);
            fuzz::require(encode(decode<Message>(encoded, version, "v/x/key")) == encoded,
                          "a step message changed in an encode/decode round trip");
            return;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string text = fuzz::text(data, size);
    roundTrip<Request>(text);
    roundTrip<Paused>(text);
    roundTrip<Done>(text);
    roundTrip<Landed>(text);
    roundTrip<Prepared>(text);
    roundTrip<Outcome>(text);
    roundTrip<Resumed>(text);
    roundTrip<Aborted>(text);
    roundTrip<Verified>(text);
    roundTrip<engine::PushMetrics>(text);
    return 0;
}
