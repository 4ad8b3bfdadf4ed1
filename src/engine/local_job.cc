#include "engine/local_job.h"

#include "common/error.h"
#include "control/connect.h"
#include "control/prefix_store.h"
#include "engine/protocol/session.h"
#include "layout/registry.h"
#include "planner/geometry.h"

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

namespace weightsync::engine {

namespace fs = std::filesystem;
namespace keys = protocol::keys;

LocalJob::LocalJob(LocalJobOptions options) : options_(std::move(options)) {
    if (options_.log_dir.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "weightsync-job-XXXXXX").string();
        check(::mkdtemp(tmpl.data()) != nullptr, Errc::kIo, "cannot create a log directory");
        options_.log_dir = tmpl;
        remove_logs_ = true;
    }
    std::error_code ec;
    fs::create_directories(options_.log_dir, ec);
    check(!ec && fs::is_directory(options_.log_dir), Errc::kIo,
          "cannot create the log directory '{}': {}", options_.log_dir,
          ec ? ec.message() : "not a directory");
}

LocalJob::~LocalJob() {
    for (auto &[name, child] : agents_) child.kill(SIGKILL);
    for (auto &[name, child] : agents_) (void)child.wait(std::chrono::seconds(5));
    if (coordinator_.running()) {  // none on an external store
        coordinator_.kill(SIGTERM);
        (void)coordinator_.wait(std::chrono::seconds(5));
    }
    if (!options_.store.empty() && store_) {
        try {
            (void)store_->erasePrefix("");  // the external store outlives the job
        } catch (const Error &) {
        }
    }
    if (remove_logs_) {
        std::error_code ec;
        fs::remove_all(options_.log_dir, ec);
    }
}

std::string LocalJob::logOf(const std::string &name) const {
    return (fs::path(options_.log_dir) / (name + ".log")).string();
}

void LocalJob::start() {
    // Every process of the job ends with the launcher (--parent-pid).
    const std::string parent = std::to_string(::getpid());
    std::vector<std::string> secret_args;
    if (options_.secret) {
        const std::string path = (fs::path(options_.log_dir) / "job.secret").string();
        {
            std::ofstream out(path, std::ios::trunc);
            fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
            out << options_.secret->bytes();
            out.close();
            check(out.good(), Errc::kIo, "cannot write the job secret to '{}'", path);
        }
        secret_args = {"--job-secret-file", path};
    }
    if (options_.store.empty()) {
        startCoordinator(parent, secret_args);
        store_address_ = fmt::format("127.0.0.1:{}", port_);
    } else {
        store_address_ = options_.store;
    }
    store_ = control::openJobStore(store_address_, options_.job_id, std::chrono::seconds(10),
                                   options_.secret);
    store_->set(keys::spec(), options_.spec.toJson().dump());

    const auto spawn = [&](const std::string &name, std::vector<std::string> args) {
        args.insert(args.begin(), options_.executable);
        for (const std::string &a : std::vector<std::string>{
                 "--store", store_address_, "--job", options_.job_id, "--parent-pid", parent}) {
            args.push_back(a);
        }
        if (options_.verbose) args.emplace_back("--verbose");
        args.insert(args.end(), secret_args.begin(), secret_args.end());
        argv_[name] = args;
        if (auto it = options_.extra_args.find(name); it != options_.extra_args.end()) {
            args.insert(args.end(), it->second.begin(), it->second.end());
        }
        agents_.emplace(name, Child(args, logOf(name)));
    };
    const layout::Layout layout = jobLayout(options_.spec);
    for (const planner::PeerSpec &p :
         planner::fleetPeers(options_.spec.fleet, planner::layoutExperts(layout))) {
        spawn("inference-" + p.name, {"inference", "--engine", std::to_string(p.engine), "--rank",
                                      std::to_string(p.rank)});
    }
    for (int t = 0; t < options_.spec.mesh.ranks(); ++t) {
        spawn(fmt::format("trainer{}", t), {"trainer", "--rank", std::to_string(t)});
    }
}

void LocalJob::startCoordinator(const std::string &parent,
                                const std::vector<std::string> &secret_args) {
    const std::string port_file = (fs::path(options_.log_dir) / "coordinator.port").string();
    fs::remove(port_file);
    std::vector<std::string> argv = {
        options_.executable, "coordinator", "--host",       "127.0.0.1", "--port", "0",
        "--port-file",       port_file,     "--parent-pid", parent};
    argv.insert(argv.end(), secret_args.begin(), secret_args.end());
    coordinator_ = Child(argv, logOf("coordinator"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!fs::exists(port_file)) {
        check(coordinator_.running(), Errc::kPeerLost, "the coordinator exited at start (see {})",
              logOf("coordinator"));
        check(std::chrono::steady_clock::now() < deadline, Errc::kTimeout,
              "the coordinator did not start within 20 s (see {})", logOf("coordinator"));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        (void)coordinator_.poll();
    }
    std::ifstream(port_file) >> port_;
}

std::map<std::string, int> LocalJob::ended() {
    for (auto &[name, child] : agents_) {
        if (auto code = child.poll()) exit_codes_[name] = *code;
    }
    return exit_codes_;
}

std::map<std::string, int> LocalJob::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (auto &[name, child] : agents_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto code = child.wait(std::max(left, std::chrono::milliseconds(0)));
        if (!code) {
            child.kill(SIGKILL);
            (void)child.wait(std::chrono::seconds(5));
            exit_codes_[name] = -1;
        } else {
            exit_codes_[name] = *code;
        }
    }
    return exit_codes_;
}

namespace {
// ": <last line of the log>" (what the process said when it failed), or "".
std::string lastLine(const std::string &path) {
    std::ifstream in(path);
    std::string line;
    std::string last;
    while (std::getline(in, line)) {
        if (!line.empty()) last = line;
    }
    return last.empty() ? "" : ": " + last;
}
}  // namespace

std::map<std::string, int> LocalJob::supervise(std::chrono::milliseconds timeout,
                                               const std::function<void()> &on_tick) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto codes = ended();
        for (const auto &[name, code] : codes) {
            if (code == 0 || !failure_.empty()) continue;
            failure_ = fmt::format(
                "process {} exited with {} (log: {}){}", name,
                code > 128 ? fmt::format("signal {}", code - 128) : fmt::format("code {}", code),
                logOf(name), lastLine(logOf(name)));
            try {
                // The version in flight, if any, fails now with this cause (a version that already
                // has an outcome keeps it); a job still starting fails its start-up.
                protocol::Session session(store_, protocol::kLauncher, {});
                session.failInit(Errc::kPeerLost, failure_);
                if (const auto latest = store_->get(keys::latest())) {
                    const uint64_t v = std::stoull(*latest);
                    (void)session.decide(
                        {v, false, protocol::kLauncher, Errc::kPeerLost, failure_});
                }
            } catch (const Error &) {
                // The coordinator may be what died.
            }
        }
        if (on_tick) on_tick();
        if (codes.size() == agents_.size()) return codes;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return wait(std::chrono::milliseconds(0));
}

void LocalJob::killCoordinator() {
    if (!coordinator_.running()) return;
    coordinator_.kill(SIGKILL);
    (void)coordinator_.wait(std::chrono::seconds(5));
}

void LocalJob::restartAgent(const std::string &name, const std::vector<std::string> &extra) {
    auto it = agents_.find(name);
    check(it != agents_.end(), Errc::kNotFound, "no process named '{}'", name);
    (void)it->second.poll();
    check(!it->second.running(), Errc::kInvalidArgument, "process '{}' is still running", name);
    std::vector<std::string> args = argv_.at(name);
    args.insert(args.end(), extra.begin(), extra.end());
    it->second = Child(args, logOf(name + ".restart"));
    exit_codes_.erase(name);
}

std::map<std::string, pid_t> LocalJob::pids() const {
    std::map<std::string, pid_t> out{{"coordinator", coordinator_.pid()}};
    for (const auto &[name, child] : agents_) out.emplace(name, child.pid());
    return out;
}

void LocalJob::killAgent(const std::string &name, int signal) {
    if (name == "coordinator") {
        coordinator_.kill(signal);
        return;
    }
    auto it = agents_.find(name);
    check(it != agents_.end(), Errc::kNotFound, "no process named '{}'", name);
    it->second.kill(signal);
}

}  // namespace weightsync::engine
