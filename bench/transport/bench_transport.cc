// UCX put throughput between two processes (this one sends; a re-exec of itself receives with
// the event-driven progress thread), next to a memcpy baseline measured in the same run. All
// buffers are pre-faulted. Prints a table; --json-out writes the numbers and the command line.
//
//   bench_transport --total 1073741824 --chunk 16777216 --passes 5
//                   --transports "posix,sysv,self;tcp,self" --json-out bench_transport.json

#include "transport/base64.h"
#include "transport/ucx/ucx_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace weightsync::transport {
namespace {

using Clock = std::chrono::steady_clock;

struct FreeDeleter {
    void operator()(void *p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, FreeDeleter>;

Buffer allocate(size_t bytes, int fill) {
    Buffer buffer(static_cast<uint8_t *>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)));
    check(buffer != nullptr, Errc::kIo, "cannot allocate {} bytes", bytes);
    std::memset(buffer.get(), fill, bytes);  // pre-fault every page
    return buffer;
}

void fillPattern(uint8_t *data, size_t bytes) {
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(data + i, &x, 8);
    }
}

double gbps(size_t bytes, Clock::duration elapsed) {
    return static_cast<double>(bytes) / std::chrono::duration<double>(elapsed).count() / 1e9;
}

struct Series {
    std::string name;
    std::string transports;
    std::vector<double> passes;
    bool verified = true;
    [[nodiscard]] double best() const { return *std::max_element(passes.begin(), passes.end()); }
    [[nodiscard]] double average() const {
        double sum = 0;
        for (double p : passes) sum += p;
        return sum / static_cast<double>(passes.size());
    }
};

// ---- receiver role --------------------------------------------------------------------------

int runReceiver(const std::string &transports, size_t total, bool wakeup) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    UcxOptions options;
    options.transports = transports;
    options.wakeup = wakeup;
    auto backend = makeUcxBackend(options);
    Buffer buffer = allocate(total, 0);
    auto region = backend->registerMemory(buffer.get(), total, MemoryKind::kHost, -1);
    backend->startProgressThread();
    std::cout << nlohmann::json{{"address", encodeBase64(backend->address())},
                                {"region", region->describe().toJson()}}
                     .dump()
              << std::endl;
    std::string command;
    while (std::getline(std::cin, command) && command != "exit") {
        if (command == "hash") {
            backend->stopProgressThread();
            std::cout << XXH3_64bits(buffer.get(), total) << std::endl;
            backend->startProgressThread();
        }
    }
    backend->stopProgressThread();
    return 0;
}

// ---- sender role ----------------------------------------------------------------------------

/// The receiver child: /proc/self/exe --role receiver, stdin/stdout on pipes.
class ReceiverProcess {
  public:
    ReceiverProcess(const std::string &transports, size_t total, bool wakeup) {
        int to_child[2];
        int from_child[2];
        check(::pipe2(to_child, O_CLOEXEC) == 0 && ::pipe2(from_child, O_CLOEXEC) == 0, Errc::kIo,
              "pipe2: {}", std::strerror(errno));
        std::vector<std::string> args = {
            "/proc/self/exe",      "--role",   "receiver",
            "--transports",        transports, "--total",
            std::to_string(total), "--wakeup", wakeup ? "true" : "false"};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        check(pid_ >= 0, Errc::kIo, "fork: {}", std::strerror(errno));
        if (pid_ == 0) {
            ::dup2(to_child[0], STDIN_FILENO);
            ::dup2(from_child[1], STDOUT_FILENO);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        to_child_ = ::fdopen(to_child[1], "w");
        from_child_ = from_child[0];
    }
    ~ReceiverProcess() {
        if (to_child_ != nullptr) std::fclose(to_child_);  // EOF: the receiver exits
        ::close(from_child_);
        for (int i = 0; i < 500 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i) ::usleep(10000);
        if (::waitpid(pid_, nullptr, WNOHANG) == 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ReceiverProcess(const ReceiverProcess &) = delete;
    ReceiverProcess &operator=(const ReceiverProcess &) = delete;

    std::string readLine(int timeout_ms) {
        while (true) {
            const auto newline = buffered_.find('\n');
            if (newline != std::string::npos) {
                std::string line = buffered_.substr(0, newline);
                buffered_.erase(0, newline + 1);
                return line;
            }
            pollfd entry{from_child_, POLLIN, 0};
            check(::poll(&entry, 1, timeout_ms) > 0, Errc::kTimeout, "receiver did not answer");
            char chunk[4096];
            const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
            check(n > 0, Errc::kPeerLost, "receiver exited");
            buffered_.append(chunk, static_cast<size_t>(n));
        }
    }
    void writeLine(const std::string &line) {
        std::fputs((line + "\n").c_str(), to_child_);
        std::fflush(to_child_);
    }

  private:
    pid_t pid_ = -1;
    std::FILE *to_child_ = nullptr;
    int from_child_ = -1;
    std::string buffered_;
};

Series measureMemcpy(size_t total, int passes) {
    Series series{"memcpy", "-", {}, true};
    Buffer source = allocate(total, 1);
    Buffer target = allocate(total, 0);
    fillPattern(source.get(), total);
    for (int pass = 0; pass < passes; ++pass) {
        const auto start = Clock::now();
        std::memcpy(target.get(), source.get(), total);
        series.passes.push_back(gbps(total, Clock::now() - start));
    }
    series.verified = std::memcmp(target.get(), source.get(), total) == 0;
    return series;
}

Series measureUcx(const std::string &transports, size_t total, size_t chunk, int passes,
                  bool wakeup, const uint8_t *source_data, uint64_t source_hash) {
    Series series{"ucx put", transports.empty() ? "(UCX default)" : transports, {}, false};
    ReceiverProcess receiver(transports, total, wakeup);
    const auto hello = nlohmann::json::parse(receiver.readLine(30000));
    UcxOptions options;
    options.transports = transports;
    auto sender = makeUcxBackend(options);
    auto local =
        sender->registerMemory(const_cast<uint8_t *>(source_data), total, MemoryKind::kHost, -1);
    sender->connect("receiver", decodeBase64(hello.at("address").get<std::string>()));
    auto remote = sender->importRegion("receiver", RemoteDescriptor::fromJson(hello.at("region")));
    auto pass = [&] {
        const auto start = Clock::now();
        for (size_t offset = 0; offset < total; offset += chunk) {
            sender->postWrite(*local, offset, *remote, offset, std::min(chunk, total - offset));
        }
        sender->flush(std::chrono::seconds(120));
        return Clock::now() - start;
    };
    pass();  // warm-up: wire-up and first-touch costs stay out of the numbers
    for (int i = 0; i < passes; ++i) series.passes.push_back(gbps(total, pass()));
    receiver.writeLine("hash");
    series.verified = std::stoull(receiver.readLine(60000)) == source_hash;
    receiver.writeLine("exit");
    return series;
}

int runSender(const std::vector<std::string> &transport_list, size_t total, size_t chunk,
              int passes, bool wakeup, const std::string &json_out, const std::string &command) {
    std::vector<Series> results;
    results.push_back(measureMemcpy(total, passes));
    Buffer source = allocate(total, 1);
    fillPattern(source.get(), total);
    const uint64_t source_hash = XXH3_64bits(source.get(), total);
    for (const auto &transports : transport_list) {
        results.push_back(
            measureUcx(transports, total, chunk, passes, wakeup, source.get(), source_hash));
    }

    const double baseline = results.front().best();
    fmt::print("bench_transport: {} MiB per pass, {} MiB chunks, {} timed passes, receiver {}\n",
               total >> 20, chunk >> 20, passes, wakeup ? "event-driven" : "busy-polling");
    fmt::print("{:<10} {:<20} {:>10} {:>10} {:>12} {:>9}\n", "method", "transports", "best GB/s",
               "avg GB/s", "best/memcpy", "verified");
    for (const auto &s : results) {
        fmt::print("{:<10} {:<20} {:>10.2f} {:>10.2f} {:>11.0f}% {:>9}\n", s.name, s.transports,
                   s.best(), s.average(), 100.0 * s.best() / baseline, s.verified ? "yes" : "NO");
    }
    if (!json_out.empty()) {
        nlohmann::json out{{"command", command},        {"total_bytes", total},
                           {"chunk_bytes", chunk},      {"passes", passes},
                           {"receiver_wakeup", wakeup}, {"results", nlohmann::json::array()}};
        for (const auto &s : results) {
            out["results"].push_back({{"method", s.name},
                                      {"transports", s.transports},
                                      {"best_gbps", s.best()},
                                      {"avg_gbps", s.average()},
                                      {"pass_gbps", s.passes},
                                      {"verified", s.verified}});
        }
        std::ofstream(json_out) << out.dump(2) << "\n";
    }
    bool ok = true;
    for (const auto &s : results) ok = ok && s.verified;
    return ok ? 0 : 1;
}

}  // namespace
}  // namespace weightsync::transport

int main(int argc, char **argv) {
    using namespace weightsync::transport;
    CLI::App app{"UCX put throughput between two processes, next to memcpy"};
    std::string role = "sender";
    size_t total = size_t{1} << 30;
    size_t chunk = size_t{16} << 20;
    int passes = 5;
    bool wakeup = true;
    std::string transports = "posix,sysv,self;tcp,self";
    std::string json_out;
    app.add_option("--role", role, "sender (default) or receiver (internal)");
    app.add_option("--total", total, "bytes per pass")->check(CLI::PositiveNumber);
    app.add_option("--chunk", chunk, "bytes per postWrite")->check(CLI::PositiveNumber);
    app.add_option("--passes", passes, "timed passes (after one warm-up)")
        ->check(CLI::PositiveNumber);
    app.add_option("--wakeup", wakeup, "receiver progress thread sleeps on the event fd");
    app.add_option("--transports", transports,
                   "';'-separated UCX transport lists; 'default' = UCX's own choice");
    app.add_option("--json-out", json_out, "write results as JSON here");
    CLI11_PARSE(app, argc, argv);
    try {
        if (role == "receiver") return runReceiver(transports, total, wakeup);
        std::vector<std::string> list;
        std::stringstream stream(transports);
        for (std::string item; std::getline(stream, item, ';');) {
            list.push_back(item == "default" ? "" : item);
        }
        std::string command;
        for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
        return runSender(list, total, chunk, passes, wakeup, json_out, command);
    } catch (const std::exception &e) {
        std::cerr << "bench_transport (" << role << "): " << e.what() << "\n";
        return 1;
    }
}
