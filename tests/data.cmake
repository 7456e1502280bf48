# data/: shards, decoding, PIL-compatible resampling, augmentations, loader, `beit pack`.
if(TARGET beit_data)
  beit_add_test(NAME test_data_pil SOURCES test_data_pil.c LABELS unit LIBS beit_data
                ARGS ${CMAKE_CURRENT_BINARY_DIR}/data_pil_ref)
  target_include_directories(test_data_pil PRIVATE ${PROJECT_SOURCE_DIR}/data)
  add_test(NAME data_pil_fixture
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/data_pil_ref.py
                   ${CMAKE_CURRENT_BINARY_DIR}/data_pil_ref)
  set_tests_properties(data_pil_fixture PROPERTIES FIXTURES_SETUP data_pil LABELS unit)
  set_tests_properties(test_data_pil PROPERTIES FIXTURES_REQUIRED data_pil)
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
  beit_add_test(NAME test_randaugment SOURCES test_randaugment.c LABELS unit LIBS beit_data
                ARGS ${CMAKE_CURRENT_BINARY_DIR}/randaugment_ref)
  target_include_directories(test_randaugment PRIVATE ${PROJECT_SOURCE_DIR}/data)
  add_test(NAME randaugment_fixture
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/randaugment_ref.py
                   ${CMAKE_CURRENT_BINARY_DIR}/randaugment_ref)
  set_tests_properties(randaugment_fixture PROPERTIES FIXTURES_SETUP randaugment LABELS unit)
  set_tests_properties(test_randaugment PROPERTIES FIXTURES_REQUIRED randaugment)
endif()
