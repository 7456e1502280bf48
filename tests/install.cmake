# Recipes from any folder, installs and build identity (issue 14): paths inside a config file are
# relative to it (core/config_table.h beit_config_resolve_paths), `cmake --install` gives a beit
# that finds its recipes, and every run records `beit --version`'s version and commit.
if(TARGET beit_mim)
  beit_add_test(NAME test_config_paths SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config_paths.c
                LABELS unit LIBS beit_mim ARGS ${PROJECT_SOURCE_DIR})
endif()
include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
beit_add_script_test(NAME test_recipe_paths_e2e LABELS e2e PROPERTIES TIMEOUT 300)
add_test(NAME test_install_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_install_e2e.py ${CMAKE_COMMAND}
                 ${PROJECT_BINARY_DIR} $<TARGET_FILE:beit> ${CMAKE_CURRENT_BINARY_DIR}/install_e2e)
set_tests_properties(test_install_e2e PROPERTIES LABELS e2e TIMEOUT 300)
