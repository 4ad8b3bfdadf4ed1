#include "common/subprocess.h"

#include "common/error.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

extern char **environ;

namespace weightsync {

Child::Child(const std::vector<std::string> &argv, const std::string &log_path) {
    check(!argv.empty(), Errc::kInvalidArgument, "empty command line");
    std::vector<char *> args;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!log_path.empty()) {
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    }
    const int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        pid_ = -1;
        fail(Errc::kIo, "cannot start '{}': {}", argv[0], std::strerror(rc));
    }
}

Child::~Child() {
    if (running()) {
        kill(SIGKILL);
        (void)wait(std::chrono::seconds(5));
    }
}

Child::Child(Child &&other) noexcept : pid_(other.pid_), status_(other.status_) {
    other.pid_ = -1;
    other.status_.reset();
}

Child &Child::operator=(Child &&other) noexcept {
    if (this != &other) {
        if (running()) {
            kill(SIGKILL);
            (void)wait(std::chrono::seconds(5));
        }
        pid_ = other.pid_;
        status_ = other.status_;
        other.pid_ = -1;
        other.status_.reset();
    }
    return *this;
}

std::optional<int> Child::poll() {
    if (pid_ <= 0 || status_) return status_;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else if (r < 0 && errno == ECHILD) {
        status_ = 255;
    }
    return status_;
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (auto s = poll()) return s;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void Child::kill(int signal) {
    if (running()) ::kill(pid_, signal);
}

std::string selfExecutable() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    check(n > 0, Errc::kIo, "cannot resolve /proc/self/exe: {}", std::strerror(errno));
    return std::string(buf, static_cast<size_t>(n));
}

}  // namespace weightsync
