#pragma once
// Length-prefixed frames (u32 big-endian byte count, then the payload), independent of sockets.
// FrameReader assembles frames from bytes as they arrive: it holds only what has arrived and
// refuses an announced size over its limit as soon as the 4 header bytes are in, before any
// payload is buffered.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weightsync::control {

/// The default frame limit (both directions).
inline constexpr uint32_t kMaxFrameBytes = 256U << 20;

/// The 4 header bytes and the payload. Throws kInvalidArgument when payload exceeds max_bytes.
std::string encodeFrame(std::string_view payload, uint32_t max_bytes = kMaxFrameBytes);

class FrameReader {
  public:
    explicit FrameReader(uint32_t max_bytes = kMaxFrameBytes) : max_bytes_(max_bytes) {}

    /// Buffers bytes that arrived. Throws kProtocol when a header announces more than max_bytes.
    void append(std::string_view bytes);
    /// The next complete frame's payload, if one has arrived.
    std::optional<std::string> next();
    /// True while a frame has begun but not yet arrived whole.
    [[nodiscard]] bool partial() const { return buffer_.size() > start_; }
    /// Bytes buffered and not yet returned by next().
    [[nodiscard]] size_t buffered() const { return buffer_.size() - start_; }

  private:
    /// Payload size of the frame at start_, once its header is in; checks the limit.
    std::optional<uint32_t> announced() const;

    uint32_t max_bytes_;
    std::string buffer_;
    size_t start_ = 0;  // bytes before start_ were already returned
};

}  // namespace weightsync::control
