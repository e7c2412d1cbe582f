#include "cli/cli.h"

int main(int argc, char** argv) { return kubehsm::cli::Main(argc, argv); }
