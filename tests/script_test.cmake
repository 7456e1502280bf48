# beit_add_script_test(NAME <name> [MPI] [ARGS <args>...] LABELS <labels>
#                      [PROPERTIES <property> <value>...])
# A python test that drives the beit binary: tests/<name>.py run as
#   python tests/<name>.py <beit> [<mpiexec> with MPI] <work folder> [<args>...]
# the work folder named after the test without its test_ prefix; then
# set_tests_properties(<name> PROPERTIES LABELS <labels> ...). Included by the areas that use it
# (and once more by the area glob: the guard makes that a no-op).
include_guard(GLOBAL)

function(beit_add_script_test)
  cmake_parse_arguments(T "MPI" "NAME" "ARGS;LABELS;PROPERTIES" ${ARGN})
  string(REGEX REPLACE "^test_" "" work ${T_NAME})
  set(launcher "")
  if(T_MPI)
    set(launcher ${MPIEXEC_EXECUTABLE})
  endif()
  add_test(NAME ${T_NAME}
           COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/${T_NAME}.py $<TARGET_FILE:beit>
                   ${launcher} ${CMAKE_CURRENT_BINARY_DIR}/${work} ${T_ARGS})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" ${T_PROPERTIES})
endfunction()
