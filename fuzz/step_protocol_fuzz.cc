// The step protocol's messages (src/engine/protocol/messages.h), as a participant reads them from
// the store. The first byte picks the message type, the rest is the message. Properties: nothing
// but weightsync::Error escapes; what decodes survives encode -> decode unchanged.

#include "common/json.h"
#include "engine/metrics.h"
#include "engine/protocol/messages.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace weightsync;
using namespace weightsync::engine::protocol;

/// The version the message claims (decode checks it against the key's; the fuzzer supplies it).
uint64_t claimedVersion(const std::string &text) {
    uint64_t version = 0;
    (void)fuzz::accepted([&] {
        const nlohmann::json j = parseJson(text, "message");
        if (j.is_object() && j.contains("version")) {
            version = jsonInteger<uint64_t>(j.at("version"), "version");
        }
    });
    return version;
}

template <typename Message>
void roundTrip(const std::string &text) {
    const uint64_t version = claimedVersion(text);
    Message m;
    if (!fuzz::accepted([&] { m = decode<Message>(text, version, "v/x/key"); })) return;
    const std::string encoded = encode(m);
    fuzz::require(encode(decode<Message>(encoded, version, "v/x/key")) == encoded,
                  "a step message changed in an encode/decode round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const std::string text(fuzz::text(data + 1, size - 1));
    switch (data[0] % 11) {
        case 0: roundTrip<Request>(text); break;
        case 1: roundTrip<Paused>(text); break;
        case 2: roundTrip<Done>(text); break;
        case 3: roundTrip<Landed>(text); break;
        case 4: roundTrip<Prepared>(text); break;
        case 5: roundTrip<Outcome>(text); break;
        case 6: roundTrip<Resumed>(text); break;
        case 7: roundTrip<Aborted>(text); break;
        case 8: roundTrip<Verified>(text); break;
        case 9: roundTrip<engine::PushMetrics>(text); break;
        default: roundTrip<CheckpointRanges>(text); break;
    }
    return 0;
}
