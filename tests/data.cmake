# data/: shards, decoding, PIL-compatible resampling, augmentations, loader, `beit pack`.

# A unit test of data/ against a python reference: tests/<ref>.py writes the fixture folder
# <binary dir>/<ref> (ctest fixture <fixture>), which <name> reads (its argument).
function(beit_add_data_ref_test name ref fixture)
  beit_add_test(NAME ${name} SOURCES ${name}.c LABELS unit LIBS beit_data
                ARGS ${CMAKE_CURRENT_BINARY_DIR}/${ref})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/data)
  add_test(NAME ${fixture}_fixture
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/${ref}.py
                   ${CMAKE_CURRENT_BINARY_DIR}/${ref})
  set_tests_properties(${fixture}_fixture PROPERTIES FIXTURES_SETUP ${fixture} LABELS unit)
  set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED ${fixture})
endfunction()

if(TARGET beit_data)
  beit_add_data_ref_test(test_data_pil data_pil_ref data_pil)
endif()

if(TARGET beit_data)
  find_package(HDF5 REQUIRED COMPONENTS C)
  find_path(BEIT_DATA_STB_INCLUDE stb/stb_image.h REQUIRED)
  beit_add_test(NAME test_data_pack SOURCES test_data_pack.c LABELS unit LIBS beit_data)
  target_include_directories(test_data_pack PRIVATE ${PROJECT_SOURCE_DIR}/data
                             ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS} ${BEIT_DATA_STB_INCLUDE})
endif()

if(TARGET beit_data)
  beit_add_test(NAME test_data_loader SOURCES test_data_loader.c LABELS unit LIBS beit_data)
  target_include_directories(test_data_loader PRIVATE ${PROJECT_SOURCE_DIR}/data
                             ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS} ${BEIT_DATA_STB_INCLUDE})
endif()

if(TARGET beit_data AND TARGET beit)
  add_test(NAME data_e2e_pack
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/data_e2e.sh $<TARGET_FILE:beit> ${BEIT_PYTHON}
                   ${PROJECT_SOURCE_DIR}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(data_e2e_pack PROPERTIES LABELS e2e TIMEOUT 600)
endif()

if(TARGET beit_data)
  beit_add_data_ref_test(test_randaugment randaugment_ref randaugment)
endif()
