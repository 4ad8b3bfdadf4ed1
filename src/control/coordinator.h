#pragma once
// The coordinator process body: serves a TcpStoreServer until asked to stop. The CLI wraps it as
// `weightsync coordinator`.

#include "control/tcp_store_server.h"

#include <atomic>
#include <functional>
#include <string>

namespace weightsync::control {

/// Binds host:port (port 0 = ephemeral), calls on_ready(bound_port) once clients may connect,
/// then serves until stop_flag becomes true (checked every 50 ms), closes every connection and
/// returns 0. Throws Errc::kIo when the address cannot be bound. limits bound what clients may
/// cost the coordinator (see ServerLimits).
int runCoordinator(const std::string &host, int port, std::atomic<bool> &stop_flag,
                   const std::function<void(int bound_port)> &on_ready,
                   const ServerLimits &limits = {});

}  // namespace weightsync::control
