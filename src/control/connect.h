#pragma once
// Opening a job's control store from its address: "host:port" is the built-in coordinator
// (TcpStoreClient), "etcd://host:port[,host:port...][/root]" an etcd cluster (etcd/etcd_store.h).

#include "control/store.h"

#include <chrono>
#include <memory>
#include <string>

namespace weightsync::control {

/// Whether address names an etcd cluster.
bool isEtcdAddress(const std::string &address);

/// Checks address without connecting; throws Errc::kInvalidArgument naming the problem (also
/// for etcd:// in a build without the etcd backend: kUnsupported).
void checkStoreAddress(const std::string &address);

/// Connects to the store at address, retrying until connect_timeout (then Errc::kPeerLost).
std::shared_ptr<Store> openStore(const std::string &address,
                                 std::chrono::milliseconds connect_timeout);

}  // namespace weightsync::control
