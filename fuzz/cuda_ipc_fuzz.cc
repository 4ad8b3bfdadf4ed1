// CUDA-IPC wire blobs a peer publishes: its backend address ("WSCUDAIPC1:" + JSON) and the key
// inside each region descriptor (a fixed-size binary record). The first input byte picks the
// decoder. Properties: nothing but weightsync::Error escapes; an accepted key packs back to the
// same bytes, an accepted address re-encodes to one that decodes the same.

#include "fuzz/fuzz_util.h"
#include "transport/cuda_ipc/cuda_ipc_identity.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    using namespace weightsync::transport::cuda_ipc;
    if (size == 0) return 0;
    const std::string blob(fuzz::text(data + 1, size - 1));
    if (data[0] % 2 == 0) {
        IpcKey key;
        if (fuzz::accepted([&] { key = IpcKey::unpack(blob, "fuzz"); })) {
            fuzz::require(key.pack() == blob, "ipc key round trip changed it");
        }
        return 0;
    }
    ProcessAddress address;
    if (fuzz::accepted([&] { address = ProcessAddress::decode(blob, "fuzz"); })) {
        const ProcessAddress again = ProcessAddress::decode(address.encode(), "fuzz");
        fuzz::require(again.host == address.host && again.pid == address.pid &&
                          again.device == address.device && again.uuid == address.uuid,
                      "cuda_ipc address round trip changed it");
    }
    return 0;
}
