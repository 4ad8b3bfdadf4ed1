#include "control/coordinator.h"

#include "common/log.h"
#include "control/tcp_store_server.h"

#include <thread>

namespace weightsync::control {

int runCoordinator(const std::string &host, int port, std::atomic<bool> &stop_flag,
                   const std::function<void(int bound_port)> &on_ready,
                   const ServerLimits &limits) {
    TcpStoreServer server(host, port, nullptr, limits);
    logger("control")->info("coordinator serving the store on {}:{}", host, server.port());
    if (on_ready) on_ready(server.port());
    while (!stop_flag.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server.stop();
    logger("control")->info("coordinator on {}:{} stopped", host, server.port());
    return 0;
}

}  // namespace weightsync::control
