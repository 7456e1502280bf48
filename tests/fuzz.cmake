# Fuzz targets of the parsers of untrusted files (label fuzz; docs/faults.md, Fuzzing):
#   fuzz_safetensors_{asan,libfuzzer}  core/safetensors.c: header length, header JSON, dtype,
#                     shape and data_offsets rules; every tensor read as floats and integers
#   fuzz_config_{asan,libfuzzer}  core/config_table.c through the real key tables: recipes
#                     (mim/recipe.c), model config.json (encoder/config.c), tokenizer config
#                     (tokenizer/config.c); --set overrides; a save/load round trip
#   fuzz_shard_{asan,libfuzzer}  data/dataset.c: index.json and one HDF5 shard, opened and
#                     every record read through beit_data_open / beit_data_read_record; the
#                     shard written from a description with the HDF5 API, or (only with
#                     BEIT_FUZZ_SHARD_RAW=1, not in CI: libhdf5 crashes on some) raw bytes
#   fuzz_image_{asan,libfuzzer}  images as `beit serve` takes them (below)
# The request parser's targets are in serve.cmake and use the same driver.

# beit_add_fuzz_target(NAME <name>
#                      [SOURCES <file>...]       project sources compiled into both builds,
#                                                instrumented: the parser under test
#                      [INCLUDES <dir>...]       include folders (include/ and tests/ are given)
#                      [DEFINES <NAME=VALUE>...] preprocessor definitions of both builds
#                      [LIBS <item>...]          linked as they are, not instrumented: CMake
#                                                library targets (with their own dependencies),
#                                                library files, -l flags
#                      [RUNS <n>]                mutated runs of the bounded driver test (20000)
#                      [MAX_TOTAL_TIME <s>]      seconds of the bounded libFuzzer test (30)
#                      [LIBFUZZER_ARGS <arg>...] more libFuzzer options (-max_len=..., -dict=...)
#                      [EXCLUDE_FROM_CI])        build both, register no bounded test
# Builds from tests/fuzz_<name>.c (LLVMFuzzerTestOneInput) and tests/fuzz_<name>_seeds.c (the
# seeds, fuzz_driver.h):
#   fuzz_<name>_asan       gcc, -fsanitize=address,undefined, around tests/fuzz_driver.c; the
#                          ctest of the same name (labels unit;fuzz) replays the regression
#                          inputs in tests/fixtures/fuzz/<name>/ (when that folder exists), the
#                          seeds, then RUNS deterministic mutations
#   fuzz_<name>_libfuzzer  clang, -fsanitize=fuzzer,address,undefined (only when clang is found);
#                          the ctest of the same name (label fuzz) starts from the seeds that
#                          fuzz_<name>_asan --write-seeds writes and the regression inputs, and
#                          runs for MAX_TOTAL_TIME seconds; crash files go to
#                          build/tests/fuzz_<name>-crash-*
# A long run: build/tests/fuzz_<name>_asan --write-seeds DIR, then
#   build/tests/fuzz_<name>_libfuzzer -runs=1000000 -print_final_stats=1 DIR
find_program(BEIT_CLANG NAMES clang clang-14 clang-15 clang-16)

# The link line of items (targets and their link dependencies, flattened into files and flags)
# for a command outside CMake's own link step. Static archives may need each other in any
# order: the caller puts the list between --start-group and --end-group.
function(_beit_fuzz_link_items out)
  set(items "")
  set(queue ${ARGN})
  set(visited "")
  while(queue)
    list(POP_FRONT queue x)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" x "${x}")
    if(x MATCHES "^([A-Za-z0-9_]+)::" AND NOT TARGET ${x})
      # an imported target of another folder (ZLIB::ZLIB from data/) is not visible here: the
      # same package found again makes it
      find_package(${CMAKE_MATCH_1} QUIET)
      if(NOT TARGET ${x})
        message(FATAL_ERROR "beit_add_fuzz_target: cannot resolve ${x} for the clang link")
      endif()
    endif()
    if(NOT TARGET ${x})
      list(APPEND items ${x})
      continue()
    endif()
    if(x IN_LIST visited)
      continue()
    endif()
    list(APPEND visited ${x})
    get_target_property(type ${x} TYPE)
    get_target_property(imported ${x} IMPORTED)
    if(imported)
      foreach(prop IMPORTED_LOCATION_RELEASE IMPORTED_LOCATION_NOCONFIG IMPORTED_LOCATION)
        get_target_property(loc ${x} ${prop})
        if(loc)
          list(APPEND items ${loc})
          break()
        endif()
      endforeach()
    elseif(NOT type STREQUAL "INTERFACE_LIBRARY")
      list(APPEND items $<TARGET_FILE:${x}>)
    endif()
    get_target_property(deps ${x} INTERFACE_LINK_LIBRARIES)
    if(deps)
      list(APPEND queue ${deps})
    endif()
  endwhile()
  set(${out} ${items} PARENT_SCOPE)
endfunction()

function(beit_add_fuzz_target)
  cmake_parse_arguments(F "EXCLUDE_FROM_CI" "NAME;RUNS;MAX_TOTAL_TIME"
                        "SOURCES;INCLUDES;DEFINES;LIBS;LIBFUZZER_ARGS" ${ARGN})
  if(NOT F_RUNS)
    set(F_RUNS 20000)
  endif()
  if(NOT F_MAX_TOTAL_TIME)
    set(F_MAX_TOTAL_TIME 30)
  endif()
  set(name fuzz_${F_NAME})
  set(target_src ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  set(includes ${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR} ${F_INCLUDES})
  set(fixtures ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/fuzz/${F_NAME})
  set(replay "")
  if(IS_DIRECTORY ${fixtures})
    set(replay --replay ${fixtures})
  endif()

  add_executable(${name}_asan ${target_src} ${CMAKE_CURRENT_SOURCE_DIR}/${name}_seeds.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_driver.c ${F_SOURCES})
  target_include_directories(${name}_asan PRIVATE ${includes})
  target_compile_definitions(${name}_asan PRIVATE ${F_DEFINES})
  target_compile_options(${name}_asan PRIVATE -fsanitize=address,undefined
                         -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g)
  target_link_options(${name}_asan PRIVATE -fsanitize=address,undefined)
  target_link_libraries(${name}_asan PRIVATE ${F_LIBS})
  if(NOT F_EXCLUDE_FROM_CI)
    add_test(NAME ${name}_asan COMMAND ${name}_asan --runs ${F_RUNS} --seed 1 ${replay}
             WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(${name}_asan PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)
  endif()

  if(NOT BEIT_CLANG)
    return()
  endif()
  set(fuzzer ${CMAKE_CURRENT_BINARY_DIR}/${name}_libfuzzer)
  set(flags "")
  foreach(dir ${includes})
    list(APPEND flags -I${dir})
  endforeach()
  foreach(def ${F_DEFINES})
    list(APPEND flags -D${def})
  endforeach()
  _beit_fuzz_link_items(link ${F_LIBS})
  set(lib_targets "")
  foreach(lib ${F_LIBS})
    if(TARGET ${lib})
      list(APPEND lib_targets ${lib})
    endif()
  endforeach()
  add_custom_command(OUTPUT ${fuzzer}
    COMMAND ${BEIT_CLANG} -std=c11 -D_DEFAULT_SOURCE -g -O1 -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all ${flags}
            ${target_src} ${F_SOURCES} -Wl,--start-group ${link} -Wl,--end-group -o ${fuzzer}
    DEPENDS ${target_src} ${F_SOURCES} ${lib_targets}
    COMMENT "clang libFuzzer build of ${name}" VERBATIM COMMAND_EXPAND_LISTS)
  add_custom_target(${name}_libfuzzer ALL DEPENDS ${fuzzer})
  if(NOT F_EXCLUDE_FROM_CI)
    set(corpus ${CMAKE_CURRENT_BINARY_DIR}/${name}_corpus)
    set(extra "")
    if(replay)
      set(extra ${fixtures})
    endif()
    string(JOIN " " args -max_total_time=${F_MAX_TOTAL_TIME} -timeout=10 -rss_limit_mb=2048
           -print_final_stats=1 -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/${name}-
           ${F_LIBFUZZER_ARGS} ${corpus} ${extra})
    add_test(NAME ${name}_libfuzzer
             COMMAND bash -c "rm -rf ${corpus} && mkdir -p ${corpus} && ./${name}_asan --write-seeds ${corpus} && ${fuzzer} ${args}"
             WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(${name}_libfuzzer PROPERTIES LABELS fuzz TIMEOUT 300)
  endif()
endfunction()

beit_add_fuzz_target(NAME safetensors
  SOURCES ${PROJECT_SOURCE_DIR}/core/safetensors.c ${PROJECT_SOURCE_DIR}/core/config_table.c
          ${PROJECT_SOURCE_DIR}/core/strbuf.c
          ${PROJECT_SOURCE_DIR}/core/status.c
  INCLUDES ${PROJECT_SOURCE_DIR}/core ${CJSON_INCLUDE}
  LIBS ${CJSON_LIB} ${MATH_LIB}
  RUNS 200000)

# The key tables of recipes, model configs and tokenizer configs, with the loaders that read
# them; what recipe.c calls in data/ (eval preprocessing) is linked uninstrumented.
if(TARGET beit_data)
  beit_add_fuzz_target(NAME config
    SOURCES ${PROJECT_SOURCE_DIR}/core/config_table.c ${PROJECT_SOURCE_DIR}/core/status.c
            ${PROJECT_SOURCE_DIR}/mim/recipe.c ${PROJECT_SOURCE_DIR}/encoder/config.c
            ${PROJECT_SOURCE_DIR}/tokenizer/config.c
    INCLUDES ${PROJECT_SOURCE_DIR}/core ${PROJECT_SOURCE_DIR}/encoder ${PROJECT_SOURCE_DIR}/mim
             ${PROJECT_SOURCE_DIR}/tokenizer ${CJSON_INCLUDE}
    DEFINES BEIT_FUZZ_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    LIBS beit_data beit_core
    RUNS 50000)
endif()

# Dataset folders: index.json and the HDF5 shards, read through the project's reader; the shard
# writer makes the seeds. libhdf5 itself is not instrumented (docs/faults.md, Fuzzing).
if(TARGET beit_data)
  find_package(HDF5 REQUIRED COMPONENTS C)
  beit_add_fuzz_target(NAME shard
    SOURCES ${PROJECT_SOURCE_DIR}/data/dataset.c ${PROJECT_SOURCE_DIR}/data/shard_write.c
            ${PROJECT_SOURCE_DIR}/core/config_table.c ${PROJECT_SOURCE_DIR}/core/status.c
    INCLUDES ${PROJECT_SOURCE_DIR}/core ${PROJECT_SOURCE_DIR}/data ${HDF5_C_INCLUDE_DIRS}
             ${CJSON_INCLUDE}
    LIBS beit_data beit_core
    RUNS 10000)
endif()

# Images as `beit serve` takes them: the header probe, the decoders' glue (data/image*.c) and the
# model preprocessing, instrumented; libjpeg-turbo and libpng themselves are linked as they are
# (OSS-Fuzz fuzzes them).
if(TARGET beit_data)
  find_package(JPEG REQUIRED)
  find_package(PNG REQUIRED)
  beit_add_fuzz_target(NAME image
    SOURCES ${PROJECT_SOURCE_DIR}/serve/probe.c ${PROJECT_SOURCE_DIR}/data/image.c
            ${PROJECT_SOURCE_DIR}/data/image_jpeg.c ${PROJECT_SOURCE_DIR}/data/image_png.c
            ${PROJECT_SOURCE_DIR}/data/preprocess.c ${PROJECT_SOURCE_DIR}/data/resize.c
    INCLUDES ${PROJECT_SOURCE_DIR}/core ${PROJECT_SOURCE_DIR}/data ${PROJECT_SOURCE_DIR}/serve
             ${CJSON_INCLUDE}
    LIBS beit_data beit_core JPEG::JPEG PNG::PNG
    RUNS 20000)
endif()
