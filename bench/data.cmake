# Data: decode + pretraining augmentation vs torchvision + PIL, and loader wait fraction.
if(TARGET beit_data)
  add_executable(bench_data ${CMAKE_CURRENT_SOURCE_DIR}/bench_data.c)
  target_include_directories(bench_data PRIVATE ${CBLAS_INCLUDE})
  target_compile_definitions(bench_data PRIVATE
    BEIT_BENCH_DATA_TV="${CMAKE_CURRENT_SOURCE_DIR}/bench_data_tv.py")
  target_link_libraries(bench_data PRIVATE beit_data beit_core)
endif()
