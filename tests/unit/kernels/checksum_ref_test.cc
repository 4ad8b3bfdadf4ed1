// The landed-bytes checksum (kernels/checksum): its definition pinned by a plain restatement,
// every single-byte change detected, independent of alignment, and the length counted.

#include "kernels/checksum/checksum_ref.h"
#include "kernels/checksum/checksum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace weightsync::kernels {
namespace {

std::vector<std::byte> randomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> b(n);
    for (std::byte &x : b) x = static_cast<std::byte>(rng());
    return b;
}

/// checksum.h's definition, word by word, byte by byte.
uint64_t plainChecksum(const std::vector<std::byte> &b) {
    uint64_t sum = 0;
    for (size_t j = 0; j * 8 < b.size(); ++j) {
        uint64_t w = 0;
        for (size_t k = 0; k < 8 && j * 8 + k < b.size(); ++k) {
            w |= static_cast<uint64_t>(b[j * 8 + k]) << (8 * k);
        }
        uint64_t x = w + (j + 1) * 0x9E3779B97F4A7C15ULL;
        for (int round = 0; round < 2; ++round) {
            x ^= x >> 32;
            x *= 0xD6E8FEB86659FD93ULL;
        }
        sum += x ^ (x >> 32);
    }
    return checksumFinal(sum, b.size());
}

TEST(KernelsChecksum, MatchesItsDefinition) {
    for (size_t n : {0, 1, 7, 8, 9, 31, 32, 33, 1000, 4099}) {
        const auto b = randomBytes(n, static_cast<uint32_t>(n));
        EXPECT_EQ(checksumRef(b.data(), b.size()), plainChecksum(b)) << n << " bytes";
    }
}

TEST(KernelsChecksum, TheVectorPathMatchesTheWordByWordOne) {
    // Every length around the 16-word blocks of the AVX-512 path, at every alignment, and a
    // large range: the same sum as the portable loop (and the definition, above).
    const auto b = randomBytes((size_t{1} << 20) + 64, 11);
    for (size_t off = 0; off < 8; ++off) {
        for (size_t n = 0; n <= 300; ++n) {
            ASSERT_EQ(checksumSumRef(b.data() + off, n), checksumSumPortable(b.data() + off, n))
                << n << " bytes at offset " << off;
        }
    }
    EXPECT_EQ(checksumSumRef(b.data() + 3, size_t{1} << 20),
              checksumSumPortable(b.data() + 3, size_t{1} << 20));
}

TEST(KernelsChecksum, EverySingleByteChangeIsDetected) {
    // Every position of a 67-byte range (a padded last word included), every other value.
    const auto b = randomBytes(67, 7);
    const uint64_t good = checksumRef(b.data(), b.size());
    int undetected = 0;
    for (size_t at = 0; at < b.size(); ++at) {
        auto c = b;
        for (int v = 1; v < 256; ++v) {
            c[at] = b[at] ^ static_cast<std::byte>(v);
            undetected += checksumRef(c.data(), c.size()) == good ? 1 : 0;
        }
    }
    EXPECT_EQ(undetected, 0);
}

TEST(KernelsChecksum, DependsOnTheBytesNotTheirAddress) {
    const auto b = randomBytes(1029, 3);
    const uint64_t aligned = checksumRef(b.data(), 1000);
    std::vector<std::byte> shifted(1040);
    for (size_t off = 1; off < 8; ++off) {
        std::copy(b.begin(), b.begin() + 1000, shifted.begin() + static_cast<ptrdiff_t>(off));
        EXPECT_EQ(checksumRef(shifted.data() + off, 1000), aligned) << "offset " << off;
    }
}

TEST(KernelsChecksum, TrailingZerosAndOrderCount) {
    std::vector<std::byte> b(16, std::byte{0});
    // Zero padding does not make n and n + 1 zero bytes alike, nor does the sum ignore order.
    EXPECT_NE(checksumRef(b.data(), 15), checksumRef(b.data(), 16));
    EXPECT_NE(checksumRef(b.data(), 0), checksumRef(b.data(), 8));
    auto c = randomBytes(16, 9);
    const uint64_t before = checksumRef(c.data(), 16);
    std::swap_ranges(c.begin(), c.begin() + 8, c.begin() + 8);  // the two words trade places
    EXPECT_NE(checksumRef(c.data(), 16), before);
}

TEST(KernelsChecksum, TermsSumInAnyOrder) {
    // The sum is commutative: the terms added last word first give the same sum (what lets a
    // GPU grid reduce its tiles in any order), as long as each word keeps its index.
    const auto b = randomBytes(4096, 11);
    uint64_t backwards = 0;
    for (size_t j = 512; j-- > 0;) {
        uint64_t w = 0;
        std::memcpy(&w, b.data() + j * 8, 8);
        backwards += checksumTerm(w, j);
    }
    EXPECT_EQ(backwards, checksumSumRef(b.data(), b.size()));
}

}  // namespace
}  // namespace weightsync::kernels
