#include "cli.h"
int beit_cmd_run(int argc, char **argv) { (void)argc; (void)argv; return 1; }
