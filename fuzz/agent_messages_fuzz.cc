// Agent metadata an inference rank publishes for the trainers: its hello (peer, layout
// fingerprint, tensors) and its memory record (host, transports' endpoints with their region
// descriptors, where each tensor lives). The same input goes to both decoders.
// Properties: nothing but weightsync::Error escapes; what decodes survives toJson -> fromJson.

#include "common/json.h"
#include "engine/messages.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    using namespace weightsync::engine;
    nlohmann::json doc;
    if (!fuzz::accepted([&] { doc = parseJson(fuzz::text(data, size), "agent message"); })) {
        return 0;
    }
    InferenceHello hello;
    if (fuzz::accepted([&] { hello = InferenceHello::fromJson(doc); })) {
        const nlohmann::json encoded = hello.toJson();
        fuzz::require(InferenceHello::fromJson(encoded).toJson() == encoded,
                      "inference hello round trip changed it");
    }
    MemoryRecord record;
    if (fuzz::accepted([&] { record = MemoryRecord::fromJson(doc); })) {
        const nlohmann::json encoded = record.toJson();
        fuzz::require(MemoryRecord::fromJson(encoded).toJson() == encoded,
                      "memory record round trip changed it");
    }
    return 0;
}
