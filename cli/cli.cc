#include "cli/cli.h"

namespace kubehsm::cli {
int Main(int, char**) { return 0; }
}  // namespace kubehsm::cli
