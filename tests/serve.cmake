# serve/: inference library, `beit predict`, `beit serve` (labels unit, e2e, fuzz, load).
#   test_serve        C unit tests (base64, request faults, preprocessing, probe, sessions, queue)
#   serve_fixtures    PyTorch-reference model folders, images and expected probabilities
#   test_serve_e2e    the CLI and the HTTP server on loopback: card request, every fault, URLs
#                     from a local server, concurrency, predict == serve == PyTorch (fp32)
#   test_serve_auth   bearer tokens (401 JSON, open probes, non-loopback refusal, token files)
#                     and HTTPS (openssl-made certificate, plain HTTP refused, bad files named)
#   test_precision_serve  predict and serve in bf16 (near fp32 and PyTorch, workers sharing one
#                     bf16 weight copy), and without bf16 (ONEDNN_MAX_CPU_ISA=AVX2)
#   fuzz_request_asan a deterministic mutation fuzzer of the request parser + base64 + header
#                     probe built with -fsanitize=address,undefined (50k runs, seconds)
#   fuzz_request_libfuzzer  the same target under clang's libFuzzer, bounded runs (when clang)
#   test_serve_load   wrk on loopback, many connections, zero failed requests (when wrk)
#   test_serve_drain  SIGTERM drains (requests in flight answered, new connections refused,
#                     /ready 503, exit 0), --drain-timeout and a second signal cut, and
#                     --read-timeout closes clients that send a byte at a time
#   test_serve_soak   valid, malformed, oversize and slow clients at once for BEIT_SOAK_SECONDS
#                     (25 here; 600 by hand, see docs/commands/serve.md): no failed request,
#                     RSS and descriptors flat, a drain at the end (labels e2e;soak)
if(NOT TARGET beit_serve)
  return()
endif()

find_library(BEIT_SERVE_STB_LIB NAMES stb REQUIRED)
beit_add_test(NAME test_serve SOURCES test_serve.c LABELS unit
              LIBS beit_serve ${BEIT_SERVE_STB_LIB})

add_test(NAME serve_fixtures
         COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_serve_fixtures.py
                 --out ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures)
set_tests_properties(serve_fixtures PROPERTIES FIXTURES_SETUP serve_fixtures LABELS e2e)

if(BEIT_BUILD_SERVER AND TARGET beit)
  add_test(NAME test_serve_e2e
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_serve_e2e.py
                   $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures)
  # LSAN_OPTIONS matters in BEIT_SANITIZE builds only: fontconfig keeps its caches by design.
  set_tests_properties(test_serve_e2e PROPERTIES FIXTURES_REQUIRED serve_fixtures LABELS e2e
                       TIMEOUT 300 ENVIRONMENT
                       "OMP_NUM_THREADS=2;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/test_serve_lsan.supp")
  # bearer tokens (401s, open probes, the non-loopback refusal, token files) and HTTPS with a
  # certificate openssl makes at test time (scripts/setup.sh installs openssl); seconds.
  add_test(NAME test_serve_auth
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_serve_auth.py
                   $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures)
  set_tests_properties(test_serve_auth PROPERTIES FIXTURES_REQUIRED serve_fixtures LABELS e2e
                       TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=1")
  # bf16 predict against fp32 and PyTorch, a bf16 server whose workers share one bf16 copy of
  # the weights, and predict under ONEDNN_MAX_CPU_ISA=AVX2 (auto = fp32, bf16 an error).
  add_test(NAME test_precision_serve
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_precision_serve.py
                   $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures)
  set_tests_properties(test_precision_serve PROPERTIES FIXTURES_REQUIRED serve_fixtures
                       LABELS e2e TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=2")
  add_test(NAME test_serve_drain
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_serve_drain.py
                   $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures)
  set_tests_properties(test_serve_drain PROPERTIES FIXTURES_REQUIRED serve_fixtures LABELS e2e
                       TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2")
  # The soak: a short run in every ctest; the full one is
  #   cmake -DBEIT_SOAK_SECONDS=600 build && ctest --test-dir build -L soak --output-on-failure
  # (or tests/serve_soak.py directly, which prints the same summary).
  set(BEIT_SOAK_SECONDS 25 CACHE STRING "seconds of load in test_serve_soak (600 for the full soak)")
  math(EXPR soak_timeout "${BEIT_SOAK_SECONDS} + 180")
  add_test(NAME test_serve_soak
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_soak.py
                   $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures
                   --duration ${BEIT_SOAK_SECONDS})
  set_tests_properties(test_serve_soak PROPERTIES FIXTURES_REQUIRED serve_fixtures
                       LABELS "e2e;soak" TIMEOUT ${soak_timeout} ENVIRONMENT "OMP_NUM_THREADS=2")
  find_program(BEIT_WRK wrk)
  if(BEIT_WRK)
    add_test(NAME test_serve_load
             COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_serve_load.py
                     $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/serve_fixtures
                     --wrk ${BEIT_WRK} --seconds 5 --connections 64)
    set_tests_properties(test_serve_load PROPERTIES FIXTURES_REQUIRED serve_fixtures
                         LABELS "e2e;load" TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2")
  endif()
endif()

# Fuzzing the request parser. The sources that touch untrusted bytes are compiled into the fuzz
# binaries themselves so that AddressSanitizer instruments them.
set(BEIT_FUZZ_SOURCES ${PROJECT_SOURCE_DIR}/serve/request.c ${PROJECT_SOURCE_DIR}/serve/base64.c
    ${PROJECT_SOURCE_DIR}/serve/text.c ${PROJECT_SOURCE_DIR}/serve/probe.c
    ${PROJECT_SOURCE_DIR}/serve/fetch_stub.c ${PROJECT_SOURCE_DIR}/core/status.c
    ${PROJECT_SOURCE_DIR}/core/strbuf.c
    ${PROJECT_SOURCE_DIR}/data/image.c ${PROJECT_SOURCE_DIR}/data/image_jpeg.c
    ${PROJECT_SOURCE_DIR}/data/image_png.c)
find_path(BEIT_FUZZ_STB_INCLUDE stb/stb_image.h REQUIRED)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
add_executable(fuzz_request_asan ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_request.c
               ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_driver.c
               ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_request_seeds.c ${BEIT_FUZZ_SOURCES})
target_include_directories(fuzz_request_asan PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${PROJECT_SOURCE_DIR}/serve ${PROJECT_SOURCE_DIR}/core
                           ${PROJECT_SOURCE_DIR}/data ${CJSON_INCLUDE} ${BEIT_FUZZ_STB_INCLUDE})
target_compile_options(fuzz_request_asan PRIVATE -fsanitize=address,undefined
                       -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g)
target_link_options(fuzz_request_asan PRIVATE -fsanitize=address,undefined)
target_link_libraries(fuzz_request_asan PRIVATE ${CJSON_LIB} ${BEIT_SERVE_STB_LIB} JPEG::JPEG
                      PNG::PNG ${MATH_LIB})
add_test(NAME fuzz_request_asan COMMAND fuzz_request_asan --runs 50000 --seed 1)
set_tests_properties(fuzz_request_asan PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)

find_program(BEIT_CLANG NAMES clang clang-14 clang-15 clang-16)
if(BEIT_CLANG)
  set(fuzzer ${CMAKE_CURRENT_BINARY_DIR}/fuzz_request_libfuzzer)
  add_custom_command(OUTPUT ${fuzzer}
    COMMAND ${BEIT_CLANG} -std=c11 -D_DEFAULT_SOURCE -g -O1 -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
            -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/serve
            -I${PROJECT_SOURCE_DIR}/core -I${PROJECT_SOURCE_DIR}/data -I${CJSON_INCLUDE}
            -I${BEIT_FUZZ_STB_INCLUDE} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_request.c
            ${BEIT_FUZZ_SOURCES} ${CJSON_LIB} ${BEIT_SERVE_STB_LIB} ${JPEG_LIBRARIES}
            ${PNG_LIBRARIES} -lm -o ${fuzzer}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_request.c ${BEIT_FUZZ_SOURCES}
    COMMENT "clang libFuzzer build of the request parser" VERBATIM)
  add_custom_target(fuzz_request_libfuzzer ALL DEPENDS ${fuzzer})
  # Seeds: valid requests and near misses, written by the fuzz target's own --write-seeds.
  add_test(NAME fuzz_request_libfuzzer
           COMMAND bash -c "rm -rf corpus && mkdir -p corpus && ./fuzz_request_asan --write-seeds corpus && ${fuzzer} -runs=200000 -max_total_time=60 -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus"
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(fuzz_request_libfuzzer PROPERTIES LABELS fuzz TIMEOUT 300)
endif()
