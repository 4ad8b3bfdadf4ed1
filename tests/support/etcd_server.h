#pragma once
// A real etcd server for tests (Debian's etcd-server): a single member on free loopback ports
// with its data in a fresh temporary directory, started by the fixture and killed (SIGKILL, data
// removed) when destroyed. Tests skip when no etcd binary is installed.

#include "common/subprocess.h"

#include <string>

namespace weightsync::testing {

class EtcdServer {
  public:
    /// The etcd binary ("" when absent: the caller skips, etcdMissing() says why).
    static std::string binary();
    static std::string etcdMissing();

    /// Starts etcd and waits until it answers; fails the test (ADD_FAILURE) if it does not.
    EtcdServer();
    ~EtcdServer();
    EtcdServer(const EtcdServer &) = delete;
    EtcdServer &operator=(const EtcdServer &) = delete;

    [[nodiscard]] int port() const { return client_port_; }
    /// "etcd://127.0.0.1:<port>/<root>".
    [[nodiscard]] std::string address(const std::string &root = "weightsync") const;
    [[nodiscard]] bool ready() const { return ready_; }
    [[nodiscard]] pid_t pid() const { return process_.pid(); }

  private:
    std::string dir_;
    int client_port_ = 0;
    Child process_;
    bool ready_ = false;
};

}  // namespace weightsync::testing

/// Skips the current test when no etcd binary is installed.
#define WEIGHTSYNC_REQUIRE_ETCD()                                             \
    do {                                                                      \
        if (::weightsync::testing::EtcdServer::binary().empty())              \
            GTEST_SKIP() << ::weightsync::testing::EtcdServer::etcdMissing(); \
    } while (false)
