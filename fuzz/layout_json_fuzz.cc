// Layout JSON (docs/layout-format.md): what `--model FILE.json` and Python's Layout.from_json
// read. Properties: nothing but weightsync::Error escapes; an accepted layout survives
// toJson -> layoutFromJson with the same fingerprint.

#include "common/json.h"
#include "fuzz/fuzz_util.h"
#include "layout/json_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    std::optional<layout::Layout> parsed;
    if (!fuzz::accepted([&] {
            parsed.emplace(layout::layoutFromJson(
                parseJson(fuzz::text(data, size), "layout", Errc::kInvalidArgument)));
        })) {
        return 0;
    }
    const layout::Layout again = layout::layoutFromJson(layout::toJson(*parsed));
    fuzz::require(again.fingerprint() == parsed->fingerprint(), "layout round trip changed it");
    return 0;
}
