// The receiver side of the multi-process transport tests: registers buffers, publishes
// {address, descriptors} as one JSON line on stdout, runs the progress thread, and answers
// commands on stdin:
//   hash  -> {"hashes": [xxh3 of each region]}   (progress is paused while hashing)
//   exit or EOF -> exits 0
// Usage: transport_peer <backend> <options-json> <regions> <bytes-per-region> <fill-byte> [mode]
// mode: comma-separated flags
//   allocate     regions come from backend->allocateMemory (exits 3 if it returns nullptr)
//   no-progress  the progress thread never runs: only one-sided writes can land

#include "common/base64.h"
#include "transport/registry.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <xxhash.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

using weightsync::encodeBase64;

struct FreeDeleter {
    void operator()(void *p) const { std::free(p); }
};

int run(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        std::cerr << "usage: transport_peer <backend> <options-json> <regions> <bytes> <fill> "
                     "[allocate,no-progress]\n";
        return 2;
    }
    const std::string backend_name = argv[1];
    const auto options = nlohmann::json::parse(argv[2]);
    const size_t regions = std::stoul(argv[3]);
    const size_t bytes = std::stoul(argv[4]);
    const int fill = std::stoi(argv[5]);
    const std::string mode = argc == 7 ? argv[6] : "";
    const bool allocate = mode.find("allocate") != std::string::npos;
    const bool progress = mode.find("no-progress") == std::string::npos;

    auto backend = weightsync::transport::makeBackend(backend_name, options);
    std::vector<std::unique_ptr<void, FreeDeleter>> buffers;
    std::vector<std::unique_ptr<weightsync::transport::LocalRegion>> registered;
    nlohmann::json hello{{"address", encodeBase64(backend->address())},
                         {"regions", nlohmann::json::array()}};
    for (size_t i = 0; i < regions; ++i) {
        if (allocate) {
            registered.push_back(
                backend->allocateMemory(bytes, weightsync::transport::MemoryKind::kHost, -1));
            if (registered.back() == nullptr) {
                std::cerr << "transport_peer: allocateMemory returned nullptr\n";
                return 3;
            }
            std::memset(registered.back()->data(), fill, bytes);
        } else {
            const size_t rounded = (bytes + 4095) / 4096 * 4096;
            buffers.emplace_back(std::aligned_alloc(4096, rounded));
            std::memset(buffers.back().get(), fill, bytes);
            registered.push_back(backend->registerMemory(
                buffers.back().get(), bytes, weightsync::transport::MemoryKind::kHost, -1));
        }
        hello["regions"].push_back(registered.back()->describe().toJson());
    }
    if (progress) backend->startProgressThread();
    std::cout << hello.dump() << std::endl;

    std::string command;
    while (std::getline(std::cin, command)) {
        if (command == "exit") break;
        if (command == "hash") {
            // Joins the progress thread: its writes are visible below. One-sided writes are
            // visible anyway: the sender flushed before it asked.
            if (progress) backend->stopProgressThread();
            nlohmann::json reply{{"hashes", nlohmann::json::array()}};
            for (const auto &region : registered) {
                reply["hashes"].push_back(XXH3_64bits(region->data(), region->size()));
            }
            if (progress) backend->startProgressThread();
            std::cout << reply.dump() << std::endl;
        } else {
            std::cerr << "transport_peer: unknown command '" << command << "'\n";
        }
    }
    backend->stopProgressThread();
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test that started us
    ::alarm(120);                        // nor hang forever
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "transport_peer: " << e.what() << "\n";
        return 1;
    }
}
