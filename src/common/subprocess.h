#pragma once
// Child processes started with posix_spawn (fork+exec: safe before or after CUDA is touched),
// owned RAII: a Child that is still running when destroyed is killed and reaped.

#include <sys/types.h>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace weightsync {

class Child {
  public:
    Child() = default;
    /// Starts argv[0] (a path) with the given arguments; stdout/stderr are inherited unless
    /// log_path is set, in which case both go to that file (truncated).
    Child(const std::vector<std::string> &argv, const std::string &log_path = "");
    ~Child();
    Child(Child &&other) noexcept;
    Child &operator=(Child &&other) noexcept;
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running() const { return pid_ > 0 && !status_; }
    /// Non-blocking: the exit code if the child has ended (128 + signal for a signal).
    std::optional<int> poll();
    /// Blocks up to timeout; nullopt if still running.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    void kill(int signal);

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

/// Path of the running executable (/proc/self/exe).
std::string selfExecutable();

}  // namespace weightsync
