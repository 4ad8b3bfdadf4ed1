#include "checkpoint/ranges.h"

#include "common/error.h"

#include <algorithm>

namespace weightsync::checkpoint {

HashedRange writeRange(const FileLayout &files, const planner::Write &w) {
    check(w.dest < files.tensors.size(), Errc::kInternal,
          "a checkpoint write names tensor {} of {}", w.dest, files.tensors.size());
    const TensorEntry &t = files.tensors[w.dest];
    check(w.dest_offset >= 0 && w.bytes > 0 && w.dest_offset + w.bytes <= t.bytes, Errc::kInternal,
          "a checkpoint write of {} bytes at {} leaves tensor '{}'", w.bytes, w.dest_offset,
          t.name);
    return {t.file, t.offset + w.dest_offset, w.bytes, 0};
}

std::vector<std::vector<HashedRange>> tileRanges(const FileLayout &files,
                                                 const std::vector<HashedRange> &ranges) {
    std::vector<std::vector<HashedRange>> out(files.files.size());
    for (const HashedRange &r : ranges) {
        check(r.file < out.size(), Errc::kProtocol, "a hashed range names file {} of {}", r.file,
              out.size());
        out[r.file].push_back(r);
    }
    for (size_t f = 0; f < out.size(); ++f) {
        auto &list = out[f];
        std::sort(list.begin(), list.end(),
                  [](const HashedRange &a, const HashedRange &b) { return a.offset < b.offset; });
        int64_t at = 0;
        for (const HashedRange &r : list) {
            check(r.offset == at && r.bytes > 0, Errc::kProtocol,
                  "checkpoint file '{}': the hashed ranges {} at byte {} (next range [{}, {}))",
                  files.files[f].name, r.offset > at ? "leave a gap" : "overlap", at, r.offset,
                  r.offset + r.bytes);
            at += r.bytes;
        }
        check(at == files.files[f].size, Errc::kProtocol,
              "checkpoint file '{}': the hashed ranges end at byte {}, the file at {}",
              files.files[f].name, at, files.files[f].size);
    }
    return out;
}

}  // namespace weightsync::checkpoint
