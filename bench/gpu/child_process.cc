#include "child_process.h"

#include "common/error.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char **environ;

namespace weightsync::bench {

ChildProcess::ChildProcess(const std::vector<std::string> &argv) {
    ::signal(SIGPIPE, SIG_IGN);
    int in_pipe[2];
    int out_pipe[2];
    check(::pipe2(in_pipe, O_CLOEXEC) == 0, Errc::kIo, "pipe2: {}", std::strerror(errno));
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        ::close(in_pipe[0]);
        ::close(in_pipe[1]);
        fail(Errc::kIo, "pipe2: {}", std::strerror(errno));
    }
    std::vector<char *> args;
    for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    to_child_ = in_pipe[1];
    from_child_ = out_pipe[0];
    if (rc != 0) {
        pid_ = -1;
        fail(Errc::kIo, "posix_spawn {}: {}", argv[0], std::strerror(rc));
    }
}

ChildProcess::~ChildProcess() {
    if (to_child_ >= 0) ::close(to_child_);  // EOF: the child exits
    if (from_child_ >= 0) ::close(from_child_);
    if (pid_ <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
}

std::string ChildProcess::readLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto newline = buffered_.find('\n');
        if (newline != std::string::npos) {
            std::string line = buffered_.substr(0, newline);
            buffered_.erase(0, newline + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        check(left.count() > 0, Errc::kTimeout, "child {}: no reply within {} ms", pid_,
              timeout.count());
        pollfd entry{from_child_, POLLIN, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        check(ready >= 0, Errc::kIo, "poll: {}", std::strerror(errno));
        if (ready == 0) continue;
        char chunk[4096];
        const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, Errc::kPeerLost, "child {} exited", pid_);
        buffered_.append(chunk, static_cast<size_t>(n));
    }
}

std::string ChildProcess::ask(const std::string &line, std::chrono::milliseconds timeout) {
    const std::string data = line + "\n";
    size_t written = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(to_child_, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, Errc::kPeerLost, "child {} is gone", pid_);
        written += static_cast<size_t>(n);
    }
    return readLine(timeout);
}

}  // namespace weightsync::bench
