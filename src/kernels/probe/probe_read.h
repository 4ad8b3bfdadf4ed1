#pragma once
// The generation probe's step (sim/read_loop.h): it reads a window of an inference rank's live
// weights the way a forward pass does and folds it into one word, so that no read can be
// skipped. Of a range of n bytes, read as little-endian 64-bit words w_0 .. w_{m-1}
// (m = ceil(n / 8), the last one zero-padded):
//
//   fold = SUM_j w_j   (mod 2^64)
//
// The sum is commutative: a GPU grid reduces it in any order and gets the CPU's value bit for
// bit (probe_read_ref.h on the CPU, probe_read.cuh on a CUDA stream).
