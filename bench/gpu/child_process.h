#pragma once
// A child process started with posix_spawn with its stdin and stdout on pipes: line-based
// request/reply for the two-process benchmarks. posix_spawn (fork + exec) is safe after CUDA is
// initialised, and the benchmark spawns before its first CUDA call anyway. Every read has a
// timeout; the destructor closes stdin, waits briefly and then SIGKILLs.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace weightsync::bench {

class ChildProcess {
  public:
    explicit ChildProcess(const std::vector<std::string> &argv);
    ~ChildProcess();
    ChildProcess(const ChildProcess &) = delete;
    ChildProcess &operator=(const ChildProcess &) = delete;

    /// One line of the child's stdout; throws kTimeout or kPeerLost.
    std::string readLine(std::chrono::milliseconds timeout);
    /// Writes a line and reads the reply line.
    std::string ask(const std::string &line, std::chrono::milliseconds timeout);

  private:
    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::string buffered_;
};

}  // namespace weightsync::bench
