#pragma once
// A whole job as local processes: the coordinator (unless the job runs on an external store such
// as etcd), every trainer rank and every inference rank,
// each a child process of the weightsync executable (fork+exec, so GPU children never inherit a
// CUDA context). Used by `weightsync demo` and the multi-process tests.

#include "common/subprocess.h"
#include "control/auth.h"
#include "control/store.h"
#include "engine/job.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace weightsync::engine {

struct LocalJobOptions {
    JobSpec spec;
    std::string executable;  // path of the weightsync tool
    std::string job_id = "demo";
    /// The job's control store: empty = start the built-in coordinator as a child process; else
    /// its address (e.g. "etcd://127.0.0.1:2379"), given to every agent as --store. The job's
    /// namespace there is erased when the job is destroyed.
    std::string store;
    /// With a secret the job is authenticated (docs/security.md): it is written to
    /// <log_dir>/job.secret (mode 0600) and given to every process as --job-secret-file.
    std::shared_ptr<const control::JobSecret> secret;
    /// One log file per process; empty = a fresh temporary directory, removed when the job is
    /// destroyed unless keepLogs() was called (e.g. because it failed).
    std::string log_dir;
    /// Extra arguments by process name ("trainer0", "inference-e0r1"), e.g. fault injection.
    std::map<std::string, std::vector<std::string>> extra_args;
    bool verbose = false;
};

class LocalJob {
  public:
    explicit LocalJob(LocalJobOptions options);
    ~LocalJob();
    LocalJob(const LocalJob &) = delete;
    LocalJob &operator=(const LocalJob &) = delete;

    /// Starts the coordinator, publishes the spec, starts every agent.
    void start();
    /// The job's namespace in the coordinator (a client of this process).
    [[nodiscard]] control::Store &store() { return *store_; }
    /// Waits for every agent to exit (the coordinator keeps running). Returns exit codes by
    /// process name; processes still running at the deadline are killed and reported as -1.
    std::map<std::string, int> wait(std::chrono::milliseconds timeout);
    /// Exit code of any agent that has already ended.
    std::map<std::string, int> ended();
    /// Waits for every agent like wait(), and supervises: the first agent that ends with a
    /// non-zero code is reported to the others at once (init/failed, and an abort of the version
    /// in flight), so they stop instead of waiting out their timeouts. on_tick runs about every
    /// 20 ms (progress output).
    std::map<std::string, int> supervise(std::chrono::milliseconds timeout,
                                         const std::function<void()> &on_tick = {});
    /// The first failure supervise() saw ("" if none).
    [[nodiscard]] const std::string &failure() const { return failure_; }
    void killCoordinator();
    /// Sends `signal` to the process `name` ("trainer0", "inference-e0r1", "coordinator").
    void killAgent(const std::string &name, int signal);
    /// Starts agent `name` again (after it ended) with its original arguments, except the extra
    /// ones, which `extra` replaces. Its log goes to <name>.restart.log.
    void restartAgent(const std::string &name, const std::vector<std::string> &extra);
    [[nodiscard]] const std::string &logDir() const { return options_.log_dir; }
    /// Keeps a temporary log directory when the job is destroyed.
    void keepLogs() { remove_logs_ = false; }
    [[nodiscard]] std::string logOf(const std::string &name) const;
    /// The built-in coordinator's port (0 when the job runs on an external store).
    [[nodiscard]] int coordinatorPort() const { return port_; }
    /// The address every agent was given (host:port or the external store's).
    [[nodiscard]] const std::string &storeAddress() const { return store_address_; }
    /// Process ids by name ("coordinator", "trainer0", "inference-e0r1"); running or not.
    [[nodiscard]] std::map<std::string, pid_t> pids() const;

  private:
    /// Starts the built-in coordinator on a free port (port_).
    void startCoordinator(const std::string &parent, const std::vector<std::string> &secret_args);

    LocalJobOptions options_;
    Child coordinator_;
    int port_ = 0;
    std::string store_address_;
    std::shared_ptr<control::Store> store_;
    std::map<std::string, Child> agents_;
    std::map<std::string, std::vector<std::string>> argv_;  // without the extra arguments
    std::map<std::string, int> exit_codes_;
    std::string failure_;
    bool remove_logs_ = false;  // the log directory is a temporary one of ours
};

}  // namespace weightsync::engine
