# Gradient allreduce benchmark (distributed/): run it under mpirun -np 2, see bench_allreduce.c.
if(TARGET beit_distributed)
  add_executable(bench_allreduce ${CMAKE_CURRENT_SOURCE_DIR}/bench_allreduce.c)
  target_link_libraries(bench_allreduce PRIVATE beit_distributed)
endif()
