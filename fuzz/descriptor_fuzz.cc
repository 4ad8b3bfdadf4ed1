// UCX / CUDA-IPC region descriptors (transport::RemoteDescriptor JSON), as peers publish them.
// Properties: nothing but weightsync::Error escapes; an accepted descriptor survives
// toJson -> fromJson unchanged.

#include "common/json.h"
#include "fuzz/fuzz_util.h"
#include "transport/transport.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    using transport::RemoteDescriptor;
    RemoteDescriptor d;
    if (!fuzz::accepted([&] {
            d = RemoteDescriptor::fromJson(parseJson(fuzz::text(data, size), "descriptor"));
        })) {
        return 0;
    }
    const nlohmann::json encoded = d.toJson();
    const RemoteDescriptor again = RemoteDescriptor::fromJson(encoded);
    fuzz::require(again.toJson() == encoded && again.key == d.key && again.address == d.address &&
                      again.length == d.length && again.generation == d.generation,
                  "descriptor round trip changed it");
    return 0;
}
