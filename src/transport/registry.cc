#include "transport/registry.h"

#include "transport/inproc/inproc_backend.h"
#include "transport/ucx/ucx_backend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace weightsync::transport {

std::vector<std::string> backendNames() {
    return {"ucx", "inproc"};
}

std::unique_ptr<TransportBackend> makeBackend(const std::string &name,
                                              const nlohmann::json &options) {
    if (name == "ucx") return makeUcxBackend(UcxOptions::fromJson(options));
    if (name == "inproc") {
        check(options.is_null() || options.empty(), Errc::kInvalidArgument,
              "the inproc backend takes no options, got {}", options.dump());
        return std::make_unique<InprocBackend>();
    }
    fail(Errc::kInvalidArgument, "unknown transport backend '{}' (known: {})", name,
         fmt::join(backendNames(), ", "));
}

}  // namespace weightsync::transport
