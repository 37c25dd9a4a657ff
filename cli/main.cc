// agentvm: the command-line client of agentvmd.
#include "cli/cli.h"

int main(int argc, char** argv) { return agentvm::cli::RunCli(argc, argv); }
