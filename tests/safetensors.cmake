# safetensors reader/writer (core/safetensors.c): round trips, dtype conversion, malformed files.
beit_add_test(NAME test_safetensors SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_safetensors.c LABELS unit)
