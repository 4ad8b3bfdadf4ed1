#pragma once
// Built-in layouts by name, and layouts loaded from a JSON file ("file:<path>" or a *.json path).

#include "layout/layout.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weightsync::layout {

std::vector<std::string> builtinLayoutNames();

/// A built-in model by name, or a JSON layout file. `layers` overrides the layer count of a
/// built-in model (e.g. GLM-5 at real dimensions with only as many layers as fit a GPU).
Layout resolveLayout(std::string_view model, std::optional<int64_t> layers = std::nullopt);

}  // namespace weightsync::layout
