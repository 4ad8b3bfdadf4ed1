#include "common/error.h"
#include "tools/cli/commands.h"

#include <cstdio>
#include <exception>

int main(int argc, char **argv) {
    CLI::App app{"weightsync: RL trainer -> inference weight updates over one-sided writes"};
    app.require_subcommand(1);
    weightsync::cli::addPlanCommand(app);
    weightsync::cli::addLayoutCommand(app);
    weightsync::cli::addAgentCommands(app);
    weightsync::cli::addDemoCommand(app);
    // Options are validated while they are parsed; a command's own errors are weightsync::Error.
    // Anything else is still reported and turned into an exit code, never an abort.
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    } catch (const weightsync::Error &e) {
        std::fprintf(stderr, "weightsync: error: %s\n", e.what());
        return 2;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "weightsync: error: %s\n", e.what());
        return 2;
    } catch (...) {
        std::fprintf(stderr, "weightsync: error: unknown exception\n");
        return 2;
    }
    return 0;
}
