# Serving benchmark (bench/bench_serve.sh drives it): the C offline forward through beit_infer.
if(TARGET beit_serve)
  add_executable(bench_serve ${CMAKE_CURRENT_SOURCE_DIR}/bench_serve.c)
  target_link_libraries(bench_serve PRIVATE beit_serve)
endif()
