#pragma once
// A store client that speaks the wire format by hand (frames of JSON over a plain socket), to
// send what TcpStoreClient never would: deep nesting, half frames, lies about frame sizes.

#include "control/frame.h"
#include "control/socket.h"
#include "control/wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace weightsync::control::testing {

class RawClient {
  public:
    explicit RawClient(int port) {
        std::string error;
        fd_ = connectTcp("127.0.0.1", port, deadlineAfter(std::chrono::seconds(5)), error);
        EXPECT_TRUE(fd_.valid()) << error;
    }

    void sendBytes(const std::string &bytes) {
        size_t sent = 0;
        while (sent < bytes.size()) {
            const ssize_t n =
                ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            ASSERT_GT(n, 0) << "send failed";
            sent += static_cast<size_t>(n);
        }
    }
    void sendRequest(const nlohmann::json &request) { sendBytes(encodeFrame(request.dump())); }

    /// The next reply frame, parsed; throws weightsync::Error (kPeerLost on EOF, kTimeout).
    nlohmann::json reply(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return wire::parse(recvFrame(fd_.get(), deadlineAfter(timeout)));
    }
    nlohmann::json call(const nlohmann::json &request) {
        sendRequest(request);
        return reply();
    }

    /// True once the server closed the connection (EOF or reset), false if still open at timeout.
    bool closedByServer(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        try {
            (void)recvFrame(fd_.get(), deadlineAfter(timeout));
            ADD_FAILURE() << "expected the connection to close, got another frame";
            return false;
        } catch (const Error &e) {
            return e.code() == Errc::kPeerLost;
        }
    }

    void close() { fd_.reset(); }
    [[nodiscard]] int fd() const { return fd_.get(); }

  private:
    ScopedFd fd_;
};

/// {"op":"hello","version":1,"id":<depth nested arrays>}.
inline std::string deepIdRequest(size_t depth) {
    return R"({"op":"hello","version":1,"id":)" + std::string(depth, '[') +
           std::string(depth, ']') + "}";
}

/// A frame header announcing `size` payload bytes.
inline std::string header(uint32_t size) {
    std::string h(4, '\0');
    for (int i = 0; i < 4; ++i) h[static_cast<size_t>(i)] = static_cast<char>(size >> (24 - 8 * i));
    return h;
}

}  // namespace weightsync::control::testing
