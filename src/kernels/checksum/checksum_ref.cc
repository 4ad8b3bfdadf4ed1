#include "kernels/checksum/checksum_ref.h"

#include "kernels/checksum/checksum.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WEIGHTSYNC_CHECKSUM_AVX512 1
#else
#define WEIGHTSYNC_CHECKSUM_AVX512 0
#endif

namespace weightsync::kernels {

namespace {

uint64_t loadWord(const std::byte *data, uint64_t word) {
    uint64_t w = 0;
    std::memcpy(&w, data + word * 8, 8);  // little-endian hosts only (x86-64, aarch64)
    return w;
}

/// The terms of words [from, words) and of the zero-padded tail of a range of `bytes` bytes.
uint64_t sumTail(const std::byte *data, uint64_t bytes, uint64_t from) {
    const uint64_t words = bytes / 8;
    uint64_t s = 0;
    for (uint64_t j = from; j < words; ++j) s += checksumTerm(loadWord(data, j), j);
    if (const uint64_t tail = bytes % 8; tail != 0) {
        uint64_t w = 0;
        std::memcpy(&w, data + words * 8, tail);
        s += checksumTerm(w, words);
    }
    return s;
}

#if WEIGHTSYNC_CHECKSUM_AVX512
// GCC 12's AVX-512 headers trip its own uninitialized-value warnings (their undefined-vector
// idiom); nothing here reads an uninitialized value.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// checksumMix of 8 words at once (AVX-512DQ has the 64-bit multiply the scalar loop spends
/// most of its time on): the same bits, lane by lane.
__attribute__((target("avx512f,avx512dq"))) inline __m512i mix8(__m512i x, __m512i mul) {
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 32));
    x = _mm512_mullo_epi64(x, mul);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 32));
    x = _mm512_mullo_epi64(x, mul);
    return _mm512_xor_si512(x, _mm512_srli_epi64(x, 32));
}

/// The sum over words [0, words & ~15) 16 at a time; returns it and sets `done`.
__attribute__((target("avx512f,avx512dq"))) uint64_t sumAvx512(const std::byte *data,
                                                               uint64_t words, uint64_t &done) {
    const __m512i mul = _mm512_set1_epi64(static_cast<long long>(kChecksumMul));
    // (j + 1) * kChecksumKey for the 8 lanes, advanced by 8 * kChecksumKey (mod 2^64).
    __m512i key0 = _mm512_mullo_epi64(_mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8),
                                      _mm512_set1_epi64(static_cast<long long>(kChecksumKey)));
    constexpr uint64_t kStep8 = kChecksumKey * 8;  // mod 2^64
    const __m512i step8 = _mm512_set1_epi64(static_cast<long long>(kStep8));
    __m512i key1 = _mm512_add_epi64(key0, step8);
    const __m512i step16 = _mm512_add_epi64(step8, step8);
    __m512i acc0 = _mm512_setzero_si512();
    __m512i acc1 = _mm512_setzero_si512();
    uint64_t j = 0;
    for (; j + 16 <= words; j += 16) {
        const __m512i w0 = _mm512_loadu_si512(data + j * 8);
        const __m512i w1 = _mm512_loadu_si512(data + j * 8 + 64);
        acc0 = _mm512_add_epi64(acc0, mix8(_mm512_add_epi64(w0, key0), mul));
        acc1 = _mm512_add_epi64(acc1, mix8(_mm512_add_epi64(w1, key1), mul));
        key0 = _mm512_add_epi64(key0, step16);
        key1 = _mm512_add_epi64(key1, step16);
    }
    done = j;
    return static_cast<uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(acc0, acc1)));
}

#pragma GCC diagnostic pop

bool haveAvx512() {
    static const bool kHave =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    return kHave;
}
#endif

}  // namespace

uint64_t checksumSumPortable(const std::byte *data, uint64_t bytes) {
    const uint64_t words = bytes / 8;
    // Four independent sums keep the multiplier busy; the total is the same in any order.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint64_t j = 0;
    for (; j + 4 <= words; j += 4) {
        s0 += checksumTerm(loadWord(data, j), j);
        s1 += checksumTerm(loadWord(data, j + 1), j + 1);
        s2 += checksumTerm(loadWord(data, j + 2), j + 2);
        s3 += checksumTerm(loadWord(data, j + 3), j + 3);
    }
    return s0 + s1 + s2 + s3 + sumTail(data, bytes, j);
}

uint64_t checksumSumRef(const std::byte *data, uint64_t bytes) {
#if WEIGHTSYNC_CHECKSUM_AVX512
    if (haveAvx512()) {
        uint64_t done = 0;
        const uint64_t sum = sumAvx512(data, bytes / 8, done);
        return sum + sumTail(data, bytes, done);
    }
#endif
    return checksumSumPortable(data, bytes);
}

uint64_t checksumRef(const std::byte *data, uint64_t bytes) {
    return checksumFinal(checksumSumRef(data, bytes), bytes);
}

}  // namespace weightsync::kernels
