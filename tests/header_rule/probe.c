/* One include, compiled with the `beit` command's include path (apps/CMakeLists.txt, the
 * header_rule_* objects): BEIT_PROBE_HEADER names a public header, which must compile, or a
 * library's internal one, which must not be found (tests/header_rule/check.cmake). */
#include BEIT_PROBE_HEADER

int beit_header_rule_probe;
