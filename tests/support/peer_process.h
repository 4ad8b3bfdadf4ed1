#pragma once
// A child process (fork + exec) with its stdin and stdout on pipes, for multi-process tests and
// the two-process benchmarks.
// Every read has a timeout; the destructor closes stdin, waits briefly and then SIGKILLs, so no
// child outlives its test.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace weightsync::testing {

class PeerProcess {
  public:
    PeerProcess(const std::string &executable, const std::vector<std::string> &args);
    ~PeerProcess();
    PeerProcess(const PeerProcess &) = delete;
    PeerProcess &operator=(const PeerProcess &) = delete;

    /// One line from the child's stdout, without the newline. Throws on timeout or EOF.
    std::string readLine(std::chrono::milliseconds timeout);
    /// Writes a line to the child's stdin; false if the child is gone.
    bool writeLine(const std::string &line);
    /// Writes a request line and reads the reply line; throws if the child is gone or silent.
    std::string ask(const std::string &line, std::chrono::milliseconds timeout);
    /// SIGKILLs the child and reaps it.
    void kill();
    /// Closes stdin and waits for the exit status (SIGKILL after `timeout`).
    int wait(std::chrono::milliseconds timeout);
    [[nodiscard]] pid_t pid() const { return pid_; }

  private:
    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::string buffered_;
};

}  // namespace weightsync::testing
