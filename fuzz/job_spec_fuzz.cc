// The job spec every agent reads from the coordinator at start-up, and the transport options it
// carries (UcxOptions, CudaIpcOptions decode spec.transport_options).
// Properties: nothing but weightsync::Error escapes; an accepted spec survives
// toJson -> fromJson unchanged.

#include "common/json.h"
#include "engine/job.h"
#include "fuzz/fuzz_util.h"
#include "transport/cuda_ipc/cuda_ipc_backend.h"
#include "transport/ucx/ucx_backend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace weightsync;
    engine::JobSpec spec;
    if (!fuzz::accepted([&] {
            spec = engine::JobSpec::fromJson(parseJson(fuzz::text(data, size), "job spec"));
        })) {
        return 0;
    }
    const nlohmann::json encoded = spec.toJson();
    fuzz::require(engine::JobSpec::fromJson(encoded).toJson() == encoded,
                  "job spec round trip changed it");
    (void)fuzz::accepted([&] { (void)transport::UcxOptions::fromJson(spec.transport_options); });
    (void)fuzz::accepted(
        [&] { (void)transport::CudaIpcOptions::fromJson(spec.transport_options); });
    return 0;
}
