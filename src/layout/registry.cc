#include "layout/registry.h"

#include "common/error.h"
#include "layout/dense.h"
#include "layout/glm5.h"
#include "layout/json_layout.h"
#include "layout/limits.h"

#include <fmt/format.h>

namespace weightsync::layout {

std::vector<std::string> builtinLayoutNames() {
    return {"glm5",     "glm5-medium", "glm5-tiny", "glm5-aligned",
            "qwen3-8b", "qwen3-tiny",  "llama-tiny"};
}

Layout resolveLayout(std::string_view model, std::optional<int64_t> layers) {
    const bool is_file = model.starts_with("file:") || model.ends_with(".json");
    if (is_file) {
        check(!layers, Errc::kInvalidArgument, "--layers does not apply to a layout file");
        return loadLayoutFile(std::string(model.starts_with("file:") ? model.substr(5) : model));
    }
    if (layers) {
        check(*layers >= 1 && *layers <= limits::kMaxLayers, Errc::kInvalidArgument,
              "--layers must be in [1, {}], got {}", limits::kMaxLayers, *layers);
    }
    if (model.starts_with("glm5")) {
        Glm5Config c = glm5Config(model);
        if (layers) {
            c.layers = *layers;
            c.first_dense = std::min(c.first_dense, c.layers);
        }
        return glm5Layout(c);
    }
    if (model.starts_with("qwen3") || model.starts_with("llama")) {
        DenseConfig c = denseConfig(model);
        if (layers) c.layers = *layers;
        return denseLayout(c);
    }
    fail(Errc::kNotFound, "unknown model '{}'; built-in models: {}; or a layout file (*.json)",
         model, fmt::join(builtinLayoutNames(), ", "));
}

}  // namespace weightsync::layout
