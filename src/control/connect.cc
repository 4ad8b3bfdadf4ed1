#include "control/connect.h"

#include "common/error.h"
#include "control/authenticated_store.h"
#include "control/prefix_store.h"
#include "control/tcp_store_client.h"

#ifdef WEIGHTSYNC_HAVE_ETCD
#include "control/etcd/etcd_store.h"
#endif

#include <charconv>

namespace weightsync::control {

namespace {

std::pair<std::string, int> hostPort(const std::string &address) {
    const size_t colon = address.rfind(':');
    int port = 0;
    bool ok = colon != std::string::npos && colon > 0;
    if (ok) {
        const char *begin = address.data() + colon + 1;
        const char *end = address.data() + address.size();
        const auto [ptr, ec] = std::from_chars(begin, end, port);
        ok = ec == std::errc() && ptr == end && port >= 1 && port <= 65535;
    }
    check(ok, Errc::kInvalidArgument,
          "store address '{}' is neither host:port (the coordinator) nor "
          "etcd://host:port[,host:port...][/root]",
          address);
    return {address.substr(0, colon), port};
}

}  // namespace

bool isEtcdAddress(const std::string &address) {
    return address.rfind("etcd://", 0) == 0;
}

void checkStoreAddress(const std::string &address) {
    if (!isEtcdAddress(address)) {
        (void)hostPort(address);
        return;
    }
#ifdef WEIGHTSYNC_HAVE_ETCD
    (void)etcd::parseEtcdAddress(address);
#else
    fail(Errc::kUnsupported, "'{}': this build has no etcd store (libcurl was not found)", address);
#endif
}

std::shared_ptr<Store> openStore(const std::string &address,
                                 std::chrono::milliseconds connect_timeout,
                                 std::shared_ptr<const JobSecret> secret) {
    checkStoreAddress(address);
#ifdef WEIGHTSYNC_HAVE_ETCD
    if (isEtcdAddress(address)) {
        etcd::EtcdOptions options = etcd::parseEtcdAddress(address);
        options.connect_timeout = connect_timeout;
        return std::make_shared<etcd::EtcdStore>(std::move(options));
    }
#endif
    const auto [host, port] = hostPort(address);
    return std::make_shared<TcpStoreClient>(host, port, connect_timeout, std::chrono::seconds(10),
                                            std::move(secret));
}

std::shared_ptr<Store> openJobStore(const std::string &address, const std::string &job,
                                    std::chrono::milliseconds connect_timeout,
                                    std::shared_ptr<const JobSecret> secret) {
    std::shared_ptr<Store> store =
        std::make_shared<PrefixStore>(job, openStore(address, connect_timeout, secret));
    if (secret) store = std::make_shared<AuthenticatedStore>(std::move(secret), std::move(store));
    return store;
}

}  // namespace weightsync::control
