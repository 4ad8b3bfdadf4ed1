// The receiver of the CUDA IPC tests. Allocates `bytes` plus two 4 KiB guards with cudaMalloc on
// GPU 1 if there are two GPUs (else GPU 0), zeroes them, registers the middle (an interior
// pointer, so the base/offset path is exercised), publishes one JSON line on stdout
//   {"address": ..., "region": <descriptor>, "device": d}   or   {"skip": why}
// and answers commands on stdin:
//   verify <seed>  -> {"mismatches": n, "guard": g}  (bytes != pattern(seed), nonzero guard bytes)
//   reregister     -> a new backend (new generation) registers the same memory; new hello line
//   exit or EOF    -> exits 0
// Usage: cuda_ipc_peer <bytes>

#include "gpu/transport/pattern.h"
#include "platform/cuda/device.h"
#include "platform/cuda/resources.h"
#include "transport/cuda_ipc/cuda_ipc_backend.h"

#include <signal.h>
#include <sys/prctl.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>
#include <string>

namespace {

using namespace weightsync;
constexpr size_t kGuard = 4096;

int run(int argc, char **argv) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (argc != 2) {
        std::cerr << "usage: cuda_ipc_peer <bytes>\n";
        return 2;
    }
    const size_t bytes = std::stoul(argv[1]);
    const int count = platform::deviceCount();
    if (count == 0) {
        std::cout << nlohmann::json{{"skip", "no CUDA device"}}.dump() << std::endl;
        return 0;
    }
    const int device = count >= 2 ? 1 : 0;
    platform::DeviceGuard guard(device);
    platform::DeviceBuffer buffer(bytes + 2 * kGuard, device);
    buffer.fill(0);
    std::byte *region_start = buffer.as<std::byte>() + kGuard;

    transport::CudaIpcOptions options;
    options.device = device;
    std::unique_ptr<transport::TransportBackend> backend;
    std::unique_ptr<transport::LocalRegion> region;
    const auto hello = [&] {
        region.reset();
        backend = transport::makeCudaIpcBackend(options);
        region = backend->registerMemory(region_start, bytes, transport::MemoryKind::kCuda, device);
        std::cout << nlohmann::json{{"address", backend->address()},
                                    {"region", region->describe().toJson()},
                                    {"device", device}}
                         .dump()
                  << std::endl;
    };
    hello();

    std::string line;
    while (std::getline(std::cin, line) && line != "exit") {
        std::istringstream in(line);
        std::string command;
        in >> command;
        if (command == "verify") {
            uint64_t seed = 0;
            in >> seed;
            std::vector<uint8_t> got(bytes + 2 * kGuard);
            if (cudaMemcpy(got.data(), buffer.data(), got.size(), cudaMemcpyDeviceToHost) !=
                cudaSuccess) {
                std::cerr << "cuda_ipc_peer: cudaMemcpy failed\n";
                return 1;
            }
            const std::vector<uint8_t> want = transport::test_support::pattern(seed, bytes);
            size_t mismatches = 0;
            size_t dirty_guard = 0;
            for (size_t i = 0; i < bytes; ++i) mismatches += got[kGuard + i] != want[i];
            for (size_t i = 0; i < kGuard; ++i) {
                dirty_guard += (got[i] != 0) + (got[kGuard + bytes + i] != 0);
            }
            std::cout << nlohmann::json{{"mismatches", mismatches}, {"guard", dirty_guard}}.dump()
                      << std::endl;
        } else if (command == "reregister") {
            hello();
        } else {
            std::cerr << "cuda_ipc_peer: unknown command '" << line << "'\n";
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "cuda_ipc_peer: " << e.what() << "\n";
        std::cout << nlohmann::json{{"error", e.what()}}.dump() << std::endl;
        return 1;
    }
}
