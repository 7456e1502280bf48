/* What this binary is: its version, the git commit it was built from and its build options, all
 * fixed when CMake configured the build (top-level CMakeLists.txt). `beit --version` prints them;
 * every trainer_state.json and the first metrics.jsonl record of a run record version and commit
 * beside the precision and backends (include/beit/precision.h). */
#ifndef BEIT_VERSION_H
#define BEIT_VERSION_H

/* "0.4.0": the project() VERSION. */
const char *beit_version_string(void);
/* "2b3c34c85ef2": 12 hex digits of HEAD, "-dirty" appended when tracked files had uncommitted
 * changes; "unknown" when the source tree was not a git checkout. As of configure time. */
const char *beit_version_commit(void);
/* "Release, GNU 12.2.0; BEIT_NATIVE=ON BEIT_USE_MPI=ON ...": build type, compiler, options. */
const char *beit_version_build(void);

#endif
