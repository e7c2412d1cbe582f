// kubehsm's command line: parses, calls the modules, prints. The only place that wires modules.
#pragma once

namespace kubehsm::cli {

// Runs the kubehsm command line. Returns the process exit code: 0 on success, 1 for usage errors,
// 2 for every other failure (one clear line on stderr).
int Main(int argc, char** argv);

}  // namespace kubehsm::cli
