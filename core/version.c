/* The build's identity (include/beit/version.h), from the header CMake writes at configure time. */
#include "beit/version.h"

#include "build_info.h"

const char *beit_version_string(void) { return BEIT_BUILD_VERSION; }

const char *beit_version_commit(void) { return BEIT_BUILD_COMMIT; }

const char *beit_version_build(void) { return BEIT_BUILD_OPTIONS; }
