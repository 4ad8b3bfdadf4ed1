// The generation probe's fold (kernels/probe): its definition pinned on small ranges (the
// padded last word, the wrap-around), and a changed byte changes it.

#include "kernels/probe/probe_read_ref.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace weightsync::kernels {
namespace {

TEST(ProbeFoldRef, SumsLittleEndianWordsWithAPaddedLastOne) {
    std::array<std::byte, 11> b{};
    b[0] = std::byte{1};  // word 0 = 1
    b[8] = std::byte{2};  // word 1 = 0x030002 (three bytes, zero-padded)
    b[10] = std::byte{3};
    EXPECT_EQ(probeFoldRef(b.data(), b.size()), 1U + 0x030002U);
    EXPECT_EQ(probeFoldRef(b.data(), 0), 0U);
    EXPECT_EQ(probeFoldRef(b.data() + 8, 1), 2U);
}

TEST(ProbeFoldRef, WrapsModulo2To64AndSeesAChangedByte) {
    std::vector<std::byte> b(16, std::byte{0xff});
    EXPECT_EQ(probeFoldRef(b.data(), b.size()), 0xFFFFFFFFFFFFFFFEULL);
    b[5] = std::byte{0xfe};
    EXPECT_EQ(probeFoldRef(b.data(), b.size()), 0xFFFFFFFFFFFFFFFEULL - (uint64_t{1} << 40));
}

}  // namespace
}  // namespace weightsync::kernels
