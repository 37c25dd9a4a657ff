// Writes a host directory tree as a tar stream, a piece at a time: memory
// stays at one read buffer however large the tree (what `agentvm cp -r DIR
// ID:/path` uploads).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm::cli::tar {

// Receives the stream in pieces; an error stops the walk.
using Sink = std::function<Result<void>(std::string_view bytes)>;

struct WriteStats {
  std::uint64_t entries = 0;
  // Sockets, FIFOs and device nodes are not copied; their names are here.
  std::vector<std::string> skipped;
};

// The contents of directory `dir` (not `dir` itself), names relative to it,
// parents before children, names sorted. Symlinks are stored as symlinks,
// never followed (also not `dir` itself when it is one: pass a resolved
// path). Files with several links are stored once each, as files.
Result<WriteStats> WriteTree(const std::string& dir, const Sink& sink);

}  // namespace agentvm::cli::tar
