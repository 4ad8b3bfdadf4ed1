#include "support/etcd_server.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

namespace weightsync::testing {

namespace fs = std::filesystem;

namespace {

/// A port that was free a moment ago (bound to 0 and released).
int freePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
}

/// Whether something accepts connections on 127.0.0.1:port.
bool accepting(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

std::string EtcdServer::binary() {
    const char *path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const fs::path candidate = fs::path(dir) / "etcd";
        if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    return "";
}

std::string EtcdServer::etcdMissing() {
    return "no etcd binary on PATH: install Debian's etcd-server (scripts/setup.sh) to run the "
           "etcd store tests";
}

EtcdServer::EtcdServer() {
    // Data in memory when /dev/shm exists (etcd fsyncs every write).
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string tmpl = (base / "weightsync-etcd-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        ADD_FAILURE() << "cannot create a data directory for etcd";
        return;
    }
    dir_ = tmpl;
    for (int attempt = 0; attempt < 3 && !ready_; ++attempt) {
        client_port_ = freePort();
        const int peer_port = freePort();
        const std::string client = fmt::format("http://127.0.0.1:{}", client_port_);
        const std::string peer = fmt::format("http://127.0.0.1:{}", peer_port);
        fs::remove_all(fs::path(dir_) / "data");
        process_ =
            Child({binary(), "--name", "test", "--data-dir", dir_ + "/data", "--listen-client-urls",
                   client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                   "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=" + peer,
                   "--max-request-bytes", "33554432", "--log-level", "warn"},
                  dir_ + "/etcd.log");
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (process_.running() && std::chrono::steady_clock::now() < deadline) {
            if (accepting(client_port_)) {
                ready_ = true;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            (void)process_.poll();
        }
        if (!ready_) process_.kill(SIGKILL);
    }
    if (!ready_) ADD_FAILURE() << "etcd did not start; see " << dir_ << "/etcd.log";
}

EtcdServer::~EtcdServer() {
    process_.kill(SIGKILL);
    (void)process_.wait(std::chrono::seconds(5));
    if (!dir_.empty() && !::testing::Test::HasFailure()) {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
}

std::string EtcdServer::address(const std::string &root) const {
    return fmt::format("etcd://127.0.0.1:{}/{}", client_port_, root);
}

}  // namespace weightsync::testing
