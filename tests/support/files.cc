#include "tests/support/files.h"

#include <fstream>
#include <sstream>

namespace agentvm::testing {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace agentvm::testing
