// The client's side of the store wire: a reply frame from the coordinator, decoded the way
// TcpStoreClient does (wire::parse, replyStatus, then the fields of each op's reply).
// Property: nothing but weightsync::Error escapes.

#include "common/base64.h"
#include "control/wire.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    using namespace weightsync::control;
    nlohmann::json reply;
    if (!fuzz::accepted([&] { reply = wire::parse(fuzz::text(data, size)); })) return 0;
    const wire::ReplyStatus status = wire::replyStatus(reply, 7);
    if (!status.ok || status.connection_lost) return 0;
    (void)fuzz::accepted([&] { (void)wire::field<int64_t>(reply, "version"); });
    (void)fuzz::accepted([&] { (void)wire::field<bool>(reply, "found"); });
    (void)fuzz::accepted([&] { (void)wire::field<bool>(reply, "swapped"); });
    (void)fuzz::accepted([&] { (void)wire::field<int64_t>(reply, "value"); });
    (void)fuzz::accepted(
        [&] { (void)wire::base64Decode(wire::field<std::string>(reply, "value")); });
    (void)fuzz::accepted([&] {
        if (reply.contains("entries")) (void)wire::entriesFromJson(reply.at("entries"));
    });
    return 0;
}
