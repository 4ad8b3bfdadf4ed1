#pragma once
// Checks of command-line values, run by CLI11 while it parses, so that a bad value is refused
// with an error naming the option before a command does anything.

#include "control/auth.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace weightsync::cli {

/// "host:port" -> (host, port). Throws Error(kInvalidArgument) naming `option` unless the host
/// is non-empty and the port a number in [1, 65535].
std::pair<std::string, int> parseHostPort(const std::string &text, const std::string &option);

/// host:port, as parseHostPort accepts it.
CLI::Validator hostPort();
/// The job secret of --job-secret-file, else of $WEIGHTSYNC_JOB_SECRET, else none (nullptr). The
/// one place the environment is read for it.
std::shared_ptr<const control::JobSecret> jobSecret(const std::string &file);
/// A control store address, as control::checkStoreAddress accepts it.
CLI::Validator storeAddress();
/// A finite number of seconds in (0, limits::kMaxTimeoutSeconds] (refuses 0, -1, nan, inf).
CLI::Validator timeoutSeconds();
/// An integer in [lo, hi] (refuses 1e6 and 512.5 instead of converting them).
CLI::Validator integerIn(int64_t lo, int64_t hi);
/// An integer in [0, 2^64).
CLI::Validator unsignedInteger();
/// A non-empty string.
CLI::Validator nonEmpty();
/// A path whose directory exists (a file the command will write).
CLI::Validator inExistingDirectory();
/// A path that is a directory or could be created as one: it is a directory, or the nearest
/// existing ancestor is.
CLI::Validator directoryPath();

}  // namespace weightsync::cli
