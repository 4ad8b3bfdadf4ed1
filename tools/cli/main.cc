#include "common/error.h"
#include "tools/cli/commands.h"

#include <cstdio>

int main(int argc, char **argv) {
    CLI::App app{"weightsync: RL trainer -> inference weight updates over one-sided writes"};
    app.require_subcommand(1);
    weightsync::cli::addPlanCommand(app);
    weightsync::cli::addLayoutCommand(app);
    weightsync::cli::addAgentCommands(app);
    weightsync::cli::addDemoCommand(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    } catch (const weightsync::Error &e) {
        std::fprintf(stderr, "weightsync: error: %s\n", e.what());
        return 2;
    }
    return 0;
}
