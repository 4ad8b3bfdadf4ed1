// UCX write throughput between two processes (this one sends; a re-exec of itself receives), next
// to a single-thread memcpy of the same bytes measured in the same run: every timed UCX pass is
// paired with a memcpy pass just before it, so both see the same machine load. All buffers are
// pre-faulted, and one untimed warm-up pass precedes the timed ones (its speed is reported as
// "first", the cost of a first push).
//
// The receiver's memory is either its own (allocated, pre-faulted, registerMemory: "registered")
// or the backend's (allocateMemory: "allocated", shared memory on this host); it either runs the
// progress thread ("thread") or never progresses at all ("none"). Every option takes a ';'-list
// and the benchmark runs the product:
//
//   bench_transport --total 1073741824 --chunk 16777216 --passes 5
//       --transports "posix,sysv,self;default" --memory "registered;allocated"
//       --progress "thread;none" --json-out bench_transport.json

#include "common/base64.h"
#include "transport/ucx/ucx_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace weightsync::transport {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

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

double best(const std::vector<double> &v) {
    return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

double average(const std::vector<double> &v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
}

std::vector<std::string> splitList(const std::string &text, char separator) {
    std::vector<std::string> out;
    std::stringstream stream(text);
    for (std::string item; std::getline(stream, item, separator);) out.push_back(item);
    if (out.empty()) out.emplace_back();
    return out;
}

/// "KEY=VALUE KEY=VALUE" (space-separated: values may hold commas) -> UcxOptions::config.
std::map<std::string, std::string> parseConfig(const std::string &text) {
    std::map<std::string, std::string> config;
    std::istringstream items(text);
    for (std::string item; items >> item;) {
        const auto eq = item.find('=');
        check(eq != std::string::npos && eq > 0, Errc::kInvalidArgument,
              "--config item '{}' is not KEY=VALUE", item);
        config[item.substr(0, eq)] = item.substr(eq + 1);
    }
    return config;
}

double cpuSeconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval &t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// ---- receiver role --------------------------------------------------------------------------

struct ReceiverSpec {
    std::string transports;  // "" = UCX default
    std::string memory;      // registered | allocated
    std::string progress;    // thread | none
    bool wakeup = true;
    std::string config;  // KEY=VALUE KEY=VALUE ...
};

int runReceiver(const ReceiverSpec &spec, size_t total) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    UcxOptions options;
    options.transports = spec.transports;
    options.wakeup = spec.wakeup;
    options.config = parseConfig(spec.config);
    auto backend = makeUcxBackend(options);
    Buffer own;
    std::unique_ptr<LocalRegion> region;
    if (spec.memory == "allocated") {
        region = backend->allocateMemory(total, MemoryKind::kHost, -1);
    } else {
        own = allocate(total, 0);
        region = backend->registerMemory(own.get(), total, MemoryKind::kHost, -1);
    }
    if (region == nullptr) {
        std::cout << nlohmann::json{{"unavailable", "allocateMemory returned nullptr"}}.dump()
                  << std::endl;
        return 0;
    }
    const bool progress = spec.progress == "thread";
    if (progress) backend->startProgressThread();
    std::cout << nlohmann::json{{"address", encodeBase64(backend->address())},
                                {"region", region->describe().toJson()}}
                     .dump()
              << std::endl;
    std::string command;
    while (std::getline(std::cin, command) && command != "exit") {
        if (command == "cpu") {
            std::cout << fmt::format("{:.6f}", cpuSeconds()) << std::endl;
        } else if (command == "hash") {
            if (progress) backend->stopProgressThread();  // joins: its writes are visible below
            std::cout << XXH3_64bits(region->data(), total) << std::endl;
            if (progress) backend->startProgressThread();
        }
    }
    if (progress) backend->stopProgressThread();
    return 0;
}

// ---- sender role ----------------------------------------------------------------------------

/// The receiver child: /proc/self/exe --role receiver, stdin/stdout on pipes.
class ReceiverProcess {
  public:
    ReceiverProcess(const ReceiverSpec &spec, size_t total) {
        int to_child[2];
        int from_child[2];
        check(::pipe2(to_child, O_CLOEXEC) == 0 && ::pipe2(from_child, O_CLOEXEC) == 0, Errc::kIo,
              "pipe2: {}", std::strerror(errno));
        std::vector<std::string> args = {"/proc/self/exe",
                                         "--role",
                                         "receiver",
                                         "--transports",
                                         spec.transports.empty() ? "default" : spec.transports,
                                         "--total",
                                         std::to_string(total),
                                         "--wakeup",
                                         spec.wakeup ? "true" : "false",
                                         "--memory",
                                         spec.memory,
                                         "--progress",
                                         spec.progress,
                                         "--config",
                                         spec.config};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        // posix_spawn, not fork: a fork write-protects every page of this process until the child
        // execs, and the first write to each page afterwards faults, which would slow the next
        // memcpy pass by 4x.
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
        const int spawned = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        check(spawned == 0, Errc::kIo, "posix_spawn: {}", std::strerror(spawned));
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
    std::string ask(const std::string &line, int timeout_ms = 60000) {
        std::fputs((line + "\n").c_str(), to_child_);
        std::fflush(to_child_);
        return readLine(timeout_ms);
    }

  private:
    pid_t pid_ = -1;
    std::FILE *to_child_ = nullptr;
    int from_child_ = -1;
    std::string buffered_;
};

struct SenderSpec {
    size_t chunk = 0;  // bytes per postWrite
    size_t max_write_size = 0;
    size_t max_inflight_writes = 0;
    size_t max_inflight_bytes = 0;
    bool direct_copy = true;
};

struct Series {
    ReceiverSpec receiver;
    SenderSpec sender;
    std::string status = "ok";  // ok | unavailable | timed out | failed: ...
    double first = 0;           // the warm-up pass
    std::vector<double> passes;
    std::vector<double> memcpy_passes;  // each measured just before the matching UCX pass
    double receiver_cpu_s = 0;          // receiver CPU time during the timed passes
    bool verified = false;
};

Series measureOrFail(const ReceiverSpec &rspec, const SenderSpec &sspec, size_t total, int passes,
                     const uint8_t *source_data, uint64_t source_hash, uint8_t *memcpy_target);

Series measure(const ReceiverSpec &rspec, const SenderSpec &sspec, size_t total, int passes,
               const uint8_t *source_data, uint64_t source_hash, uint8_t *memcpy_target) {
    try {
        return measureOrFail(rspec, sspec, total, passes, source_data, source_hash, memcpy_target);
    } catch (const std::exception &e) {
        std::cerr << "bench_transport: " << e.what() << "\n";
        Series series{rspec, sspec};
        series.status = "failed";
        return series;
    }
}

Series measureOrFail(const ReceiverSpec &rspec, const SenderSpec &sspec, size_t total, int passes,
                     const uint8_t *source_data, uint64_t source_hash, uint8_t *memcpy_target) {
    Series series{rspec, sspec};
    ReceiverProcess receiver(rspec, total);
    const auto hello = nlohmann::json::parse(receiver.readLine(120000));
    if (hello.contains("unavailable")) {
        series.status = "unavailable";
        return series;
    }
    UcxOptions options;
    options.transports = rspec.transports;
    options.config = parseConfig(rspec.config);
    options.max_write_size = sspec.max_write_size;
    options.max_inflight_writes = sspec.max_inflight_writes;
    options.max_inflight_bytes = sspec.max_inflight_bytes;
    options.direct_copy = sspec.direct_copy;
    auto sender = makeUcxBackend(options);
    auto local =
        sender->registerMemory(const_cast<uint8_t *>(source_data), total, MemoryKind::kHost, -1);
    sender->connect("receiver", decodeBase64(hello.at("address").get<std::string>()));
    auto remote = sender->importRegion("receiver", RemoteDescriptor::fromJson(hello.at("region")));
    const bool probe_only = rspec.memory == "registered" && rspec.progress == "none";
    auto pass = [&](size_t bytes, std::chrono::milliseconds timeout) {
        const auto start = Clock::now();
        for (size_t offset = 0; offset < bytes; offset += sspec.chunk) {
            sender->postWrite(*local, offset, *remote, offset,
                              std::min(sspec.chunk, bytes - offset));
        }
        sender->flush(timeout);
        return Clock::now() - start;
    };
    try {
        if (probe_only) {
            // UCX emulates puts into such memory with messages the receiver must handle: expected
            // to time out. One chunk shows it.
            pass(std::min(sspec.chunk, total), 3s);
            series.status = "completed?!";
            return series;
        }
        series.first = gbps(total, pass(total, 120s));
        const double cpu_before = std::stod(receiver.ask("cpu"));
        for (int i = 0; i < passes; ++i) {
            auto start = Clock::now();
            std::memcpy(memcpy_target, source_data, total);
            series.memcpy_passes.push_back(gbps(total, Clock::now() - start));
            series.passes.push_back(gbps(total, pass(total, 120s)));
        }
        series.receiver_cpu_s = std::stod(receiver.ask("cpu")) - cpu_before;
    } catch (const Error &e) {
        series.status = e.code() == Errc::kTimeout ? "timed out" : "failed";
        if (!probe_only) std::cerr << "bench_transport: " << e.what() << "\n";
        return series;
    }
    series.verified = std::stoull(receiver.ask("hash")) == source_hash;
    return series;
}

std::string sizeText(size_t bytes) {
    if (bytes >= (size_t{1} << 20) && bytes % (size_t{1} << 20) == 0) {
        return fmt::format("{}M", bytes >> 20);
    }
    if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{}K", bytes >> 10);
    return std::to_string(bytes);
}

void printTable(const std::vector<Series> &results) {
    fmt::print(
        "{:<16} {:<10} {:<6} {:>5} {:>5} {:>4} {:>5} {:<6} {:>6} {:>6} {:>6} {:>6} {:>6} "
        "{:>6} {:>6} {:>7} {:<3} {}\n",
        "transports", "rx memory", "rx prg", "chunk", "wsize", "infl", "inflB", "direct", "first",
        "best", "avg", "mc bst", "mc avg", "b/mc", "a/mc", "rx cpu", "ok", "config");
    for (const auto &s : results) {
        const std::string transports =
            s.receiver.transports.empty() ? "default" : s.receiver.transports;
        std::string numbers;
        if (s.status == "ok") {
            numbers = fmt::format(
                "{:>6.2f} {:>6.2f} {:>6.2f} {:>6.2f} {:>6.2f} {:>5.0f}% {:>5.0f}% "
                "{:>6.2f}s {:<3}",
                s.first, best(s.passes), average(s.passes), best(s.memcpy_passes),
                average(s.memcpy_passes), 100 * best(s.passes) / best(s.memcpy_passes),
                100 * average(s.passes) / average(s.memcpy_passes), s.receiver_cpu_s,
                s.verified ? "yes" : "NO");
        } else {
            numbers = fmt::format("{:<64}", "-- " + s.status);
        }
        fmt::print("{:<16} {:<10} {:<6} {:>5} {:>5} {:>4} {:>5} {:<6} {} {}\n", transports,
                   s.receiver.memory, s.receiver.progress, sizeText(s.sender.chunk),
                   sizeText(s.sender.max_write_size), s.sender.max_inflight_writes,
                   sizeText(s.sender.max_inflight_bytes), s.sender.direct_copy ? "yes" : "no",
                   numbers, s.receiver.config);
    }
}

nlohmann::json toJson(const Series &s) {
    return {{"transports", s.receiver.transports.empty() ? "default" : s.receiver.transports},
            {"receiver_memory", s.receiver.memory},
            {"receiver_progress", s.receiver.progress},
            {"receiver_wakeup", s.receiver.wakeup},
            {"config", s.receiver.config},
            {"chunk_bytes", s.sender.chunk},
            {"max_write_size", s.sender.max_write_size},
            {"max_inflight_writes", s.sender.max_inflight_writes},
            {"max_inflight_bytes", s.sender.max_inflight_bytes},
            {"direct_copy", s.sender.direct_copy},
            {"status", s.status},
            {"first_pass_gbps", s.first},
            {"best_gbps", best(s.passes)},
            {"avg_gbps", average(s.passes)},
            {"pass_gbps", s.passes},
            {"memcpy_best_gbps", best(s.memcpy_passes)},
            {"memcpy_avg_gbps", average(s.memcpy_passes)},
            {"memcpy_pass_gbps", s.memcpy_passes},
            {"receiver_cpu_s", s.receiver_cpu_s},
            {"verified", s.verified}};
}

struct Lists {
    std::vector<std::string> transports, memory, progress, config;
    std::vector<size_t> chunk, max_write_size, max_inflight_writes, max_inflight_bytes;
    std::vector<bool> direct_copy;
};

int runSender(const Lists &lists, bool wakeup, size_t total, int passes,
              const std::string &json_out, const std::string &command) {
    Buffer source = allocate(total, 1);
    fillPattern(source.get(), total);
    const uint64_t source_hash = XXH3_64bits(source.get(), total);
    Buffer memcpy_target = allocate(total, 0);
    std::vector<Series> results;
    fmt::print(
        "bench_transport: {} MiB per pass, {} timed passes (after one warm-up), each after "
        "a memcpy pass of the same bytes\n",
        total >> 20, passes);
    for (const auto &transports : lists.transports) {
        for (const auto &config : lists.config) {
            for (const auto &memory : lists.memory) {
                for (const auto &progress : lists.progress) {
                    for (size_t chunk : lists.chunk) {
                        for (size_t wsize : lists.max_write_size) {
                            for (size_t writes : lists.max_inflight_writes) {
                                for (size_t bytes : lists.max_inflight_bytes) {
                                    for (bool direct : lists.direct_copy) {
                                        // Direct copies need shared memory: for registered
                                        // memory both settings do the same.
                                        if (memory == "registered" && !direct &&
                                            lists.direct_copy.size() > 1) {
                                            continue;
                                        }
                                        const ReceiverSpec r{transports, memory, progress, wakeup,
                                                             config};
                                        const SenderSpec s{chunk, wsize, writes, bytes, direct};
                                        results.push_back(measure(r, s, total, passes, source.get(),
                                                                  source_hash,
                                                                  memcpy_target.get()));
                                        printTable({results.back()});
                                        std::fflush(stdout);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    fmt::print(
        "\nsummary (GB/s; mc = the memcpy passes paired with the UCX passes; b/mc, a/mc = "
        "best and average over memcpy's; rx cpu = receiver CPU time during the timed "
        "passes)\n");
    printTable(results);
    if (!json_out.empty()) {
        nlohmann::json out{{"command", command},
                           {"total_bytes", total},
                           {"passes", passes},
                           {"results", nlohmann::json::array()}};
        for (const auto &s : results) out["results"].push_back(toJson(s));
        std::ofstream(json_out) << out.dump(2) << "\n";
    }
    bool ok = true;
    for (const auto &s : results) {
        const bool expected_timeout = s.receiver.memory == "registered" &&
                                      s.receiver.progress == "none" && s.status == "timed out";
        ok = ok &&
             ((s.status == "ok" && s.verified) || s.status == "unavailable" || expected_timeout);
    }
    return ok ? 0 : 1;
}

std::vector<size_t> sizes(const std::string &text) {
    std::vector<size_t> out;
    for (const auto &item : splitList(text, ';')) {
        const size_t value = std::stoull(item);
        check(value > 0, Errc::kInvalidArgument, "sizes must be positive, got {}", item);
        out.push_back(value);
    }
    return out;
}

}  // namespace
}  // namespace weightsync::transport

int main(int argc, char **argv) {
    using namespace weightsync::transport;
    CLI::App app{"UCX write throughput between two processes, next to memcpy"};
    std::string role = "sender";
    size_t total = size_t{1} << 30;
    int passes = 5;
    bool wakeup = true;
    const UcxOptions defaults;
    std::string transports = "posix,sysv,self;default";
    std::string memory = "registered;allocated";
    std::string progress = "thread;none";
    std::string chunk = std::to_string(size_t{16} << 20);
    std::string max_write_size = std::to_string(defaults.max_write_size);
    std::string max_inflight_writes = std::to_string(defaults.max_inflight_writes);
    std::string max_inflight_bytes = std::to_string(defaults.max_inflight_bytes);
    std::string direct_copy = defaults.direct_copy ? "true" : "false";
    std::string config;
    std::string json_out;
    app.add_option("--role", role, "sender (default) or receiver (internal)");
    app.add_option("--total", total, "bytes per pass")->check(CLI::PositiveNumber);
    app.add_option("--passes", passes, "timed passes (after one warm-up)")
        ->check(CLI::PositiveNumber);
    app.add_option("--wakeup", wakeup, "the receiver's progress thread sleeps on the event fd");
    app.add_option("--transports", transports,
                   "';'-list of UCX transport lists; 'default' = UCX's own choice");
    app.add_option("--memory", memory, "';'-list of receiver memory: registered, allocated");
    app.add_option("--progress", progress, "';'-list of receiver progress: thread, none");
    app.add_option("--chunk", chunk, "';'-list of bytes per postWrite");
    app.add_option("--max-write-size", max_write_size, "';'-list of UcxOptions::max_write_size");
    app.add_option("--max-inflight-writes", max_inflight_writes,
                   "';'-list of UcxOptions::max_inflight_writes");
    app.add_option("--max-inflight-bytes", max_inflight_bytes,
                   "';'-list of UcxOptions::max_inflight_bytes");
    app.add_option("--direct-copy", direct_copy,
                   "';'-list of UcxOptions::direct_copy (true/false)");
    app.add_option("--config", config,
                   "';'-list of UCX settings 'KEY=VALUE KEY=VALUE' for both sides ('' = none)");
    app.add_option("--json-out", json_out, "write results as JSON here");
    CLI11_PARSE(app, argc, argv);
    try {
        if (role == "receiver") {
            const ReceiverSpec spec{transports == "default" ? "" : transports, memory, progress,
                                    wakeup, config};
            return runReceiver(spec, total);
        }
        Lists lists;
        for (const auto &t : splitList(transports, ';')) {
            lists.transports.push_back(t == "default" ? "" : t);
        }
        lists.memory = splitList(memory, ';');
        lists.progress = splitList(progress, ';');
        lists.config = splitList(config, ';');
        lists.chunk = sizes(chunk);
        lists.max_write_size = sizes(max_write_size);
        lists.max_inflight_writes = sizes(max_inflight_writes);
        lists.max_inflight_bytes = sizes(max_inflight_bytes);
        for (const auto &d : splitList(direct_copy, ';')) lists.direct_copy.push_back(d == "true");
        std::string command;
        for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
        return runSender(lists, wakeup, total, passes, json_out, command);
    } catch (const std::exception &e) {
        std::cerr << "bench_transport (" << role << "): " << e.what() << "\n";
        return 1;
    }
}
