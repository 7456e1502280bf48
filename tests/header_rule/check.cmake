# ctest header_rule: the compiler refuses a library's internal header outside that library
# (docs/architecture.md, Libraries). Builds the header_rule_* objects of apps/CMakeLists.txt,
# each one file including one header with the `beit` command's include path: the public one
# must compile (so a broken build cannot pass for a refusal), every internal one must fail
# because the header is not found. Run as: cmake -DBUILD_DIR=... -DPROBES="public;encoder;..." -P
set(failures 0)
foreach(probe ${PROBES})
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target header_rule_${probe}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(probe STREQUAL "public")
    if(NOT rc EQUAL 0)
      message(SEND_ERROR "header_rule_public: a public header does not compile as an app:\n${out}")
      math(EXPR failures "${failures} + 1")
    endif()
  elseif(rc EQUAL 0)
    message(SEND_ERROR "header_rule_${probe}: an app compiled with an internal header")
    math(EXPR failures "${failures} + 1")
  elseif(NOT out MATCHES "No such file or directory")
    message(SEND_ERROR "header_rule_${probe}: failed, but not for want of the header:\n${out}")
    math(EXPR failures "${failures} + 1")
  else()
    message(STATUS "header_rule_${probe}: refused, as it should be")
  endif()
endforeach()
if(failures GREATER 0)
  message(FATAL_ERROR "header rule: ${failures} probe(s) wrong")
endif()
