#pragma once
// Opening a job's control store from its address: "host:port" is the built-in coordinator
// (TcpStoreClient), "etcd://host:port[,host:port...][/root]" an etcd cluster (etcd/etcd_store.h).

#include "control/auth.h"
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
/// secret: the job secret; a coordinator's requests then carry its MAC (docs/security.md).
std::shared_ptr<Store> openStore(const std::string &address,
                                 std::chrono::milliseconds connect_timeout,
                                 std::shared_ptr<const JobSecret> secret = nullptr);

/// The namespace of job `job` in the store at address; with a secret, every request and every
/// value of the job authenticated (AuthenticatedStore over PrefixStore).
std::shared_ptr<Store> openJobStore(const std::string &address, const std::string &job,
                                    std::chrono::milliseconds connect_timeout,
                                    std::shared_ptr<const JobSecret> secret = nullptr);

}  // namespace weightsync::control
