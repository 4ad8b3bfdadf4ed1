// base64 values: every store value on the wire, descriptor keys, endpoint addresses.
// Properties: decoding only throws weightsync::Error; whatever decodes re-encodes to the same
// text (one encoding per byte string); any bytes survive encode -> decode.

#include "common/base64.h"
#include "fuzz/fuzz_util.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    const std::string_view input = fuzz::text(data, size);
    std::string decoded;
    if (fuzz::accepted([&] { decoded = decodeBase64(input); })) {
        fuzz::require(encodeBase64(decoded) == input, "decode accepted a non-canonical text");
    }
    fuzz::require(decodeBase64(encodeBase64(input)) == input, "encode -> decode changed bytes");
    return 0;
}
