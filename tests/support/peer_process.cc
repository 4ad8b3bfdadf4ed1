#include "support/peer_process.h"

#include "common/error.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace weightsync::testing {
namespace {

void closeFd(int &fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

}  // namespace

PeerProcess::PeerProcess(const std::string &executable, const std::vector<std::string> &args) {
    ::signal(SIGPIPE, SIG_IGN);  // writing to a killed child must fail, not kill the test
    int in_pipe[2];
    int out_pipe[2];
    check(::pipe2(in_pipe, O_CLOEXEC) == 0 && ::pipe2(out_pipe, O_CLOEXEC) == 0, Errc::kIo,
          "pipe2: {}", std::strerror(errno));
    std::vector<std::string> argv_storage{executable};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    pid_ = ::fork();
    check(pid_ >= 0, Errc::kIo, "fork: {}", std::strerror(errno));
    if (pid_ == 0) {
        // Child: only async-signal-safe calls until exec.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(126);
        ::dup2(in_pipe[0], STDIN_FILENO);
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::execv(executable.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    to_child_ = in_pipe[1];
    from_child_ = out_pipe[0];
}

PeerProcess::~PeerProcess() {
    if (pid_ > 0) wait(std::chrono::milliseconds(3000));
    closeFd(to_child_);
    closeFd(from_child_);
}

std::string PeerProcess::readLine(std::chrono::milliseconds timeout) {
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
        check(left.count() > 0, Errc::kTimeout, "peer {}: no line within {} ms", pid_,
              timeout.count());
        pollfd entry{from_child_, POLLIN, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        check(ready >= 0, Errc::kIo, "poll: {}", std::strerror(errno));
        if (ready == 0) continue;
        char chunk[4096];
        const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, Errc::kPeerLost, "peer {} closed its stdout", pid_);
        buffered_.append(chunk, static_cast<size_t>(n));
    }
}

bool PeerProcess::writeLine(const std::string &line) {
    const std::string data = line + "\n";
    size_t written = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(to_child_, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        written += static_cast<size_t>(n);
    }
    return true;
}

void PeerProcess::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

int PeerProcess::wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    closeFd(to_child_);  // EOF on stdin asks the child to exit
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        const pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill();
    return -1;
}

std::string PeerProcess::ask(const std::string &line, std::chrono::milliseconds timeout) {
    check(writeLine(line), Errc::kPeerLost, "child {} is gone (asked '{}')", pid_, line);
    return readLine(timeout);
}

}  // namespace weightsync::testing
