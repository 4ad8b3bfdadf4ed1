// `weightsync layout`: prints a model layout in the JSON layout format (docs/layout-format.md),
// checks a layout file, or derives one from a Hugging Face config.json under a rule set.

#include "layout/derive.h"
#include "layout/hf_config.h"
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
    std::string from_hf;  // a HF config.json: derive instead of resolving --model
    std::string rules = "vllm";
    std::string name;
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
    CLI::Option *from_hf =
        cmd->add_option("--from-hf", args->from_hf,
                        "derive the layout from a Hugging Face config.json (shapes only): the "
                        "transformers model as the trainer, the --rules engine as inference side")
            ->check(CLI::ExistingFile);
    cmd->add_option("--rules", args->rules, "rule set of --from-hf: vllm or hf-fp8")
        ->check(CLI::IsMember(layout::ruleSetNames()))
        ->needs(from_hf)
        ->capture_default_str();
    cmd->add_option("--name", args->name,
                    "name of the derived layout (default: the config's architecture and the rules)")
        ->check(nonEmpty())
        ->needs(from_hf);
    from_hf->excludes(cmd->get_option("--layers"));
    cmd->callback([args] {
        const layout::Layout l = [&] {
            if (args->from_hf.empty()) return layout::resolveLayout(args->model, args->layers);
            const layout::HfModel model = layout::loadHfConfig(args->from_hf);
            const std::string name =
                args->name.empty() ? model.architecture + "/" + args->rules : args->name;
            return layout::deriveFromHf(model, args->rules, name);
        }();
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
