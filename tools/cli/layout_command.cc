// `weightsync layout`: prints a model layout in the JSON layout format (docs/layout-format.md),
// or checks a layout file.

#include "layout/json_layout.h"
#include "layout/limits.h"
#include "layout/registry.h"
#include "tools/cli/commands.h"
#include "tools/cli/validators.h"

#include <fmt/format.h>

#include <memory>
#include <optional>

namespace weightsync::cli {

namespace {
struct LayoutArgs {
    std::string model = "glm5-tiny";
    std::optional<int64_t> layers;
    bool summary = false;
};
}  // namespace

void addLayoutCommand(CLI::App &app) {
    auto args = std::make_shared<LayoutArgs>();
    CLI::App *cmd = app.add_subcommand("layout", "print or check a model layout");
    cmd->add_option("--model", args->model, "built-in model or layout JSON file")
        ->check(nonEmpty())
        ->capture_default_str();
    cmd->add_option("--layers", args->layers, "override the layer count of a built-in model")
        ->check(integerIn(1, limits::kMaxLayers));
    cmd->add_flag("--summary", args->summary, "one line of counts instead of the JSON layout");
    cmd->callback([args] {
        const layout::Layout l = layout::resolveLayout(args->model, args->layers);
        if (args->summary) {
            fmt::print(
                "{}: {} trainer tensors ({:.3f} GB), {} destination tensors ({:.3f} GB), "
                "fingerprint {}\n",
                l.name(), l.sources().size(), l.sourceBytes() / 1e9, l.dests().size(),
                l.destBytes() / 1e9, l.fingerprint());
            return;
        }
        fmt::print("{}\n", layout::toJson(l).dump(1));
    });
}

}  // namespace weightsync::cli
