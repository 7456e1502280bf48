# distributed/ (label mpi): rank info, chunked bcast, f64 reductions, bucketed gradient averaging.
# test_mpi runs as one rank without a launcher (and is the whole suite of the serial build); with
# BEIT_USE_MPI it also runs under mpirun with 2 and 3 ranks (3: float sums are not associative,
# so bit-identical results across ranks are a property of the collective). The fault tests check
# that a rank calling beit_dist_abort, killed by SIGKILL, or stopped by SIGSTOP inside a collective
# (a 2 s deadline; the message names it) ends the whole job non-zero in < 30 s.
if(TARGET beit_distributed)
  find_package(Threads REQUIRED)
  beit_add_test(NAME test_mpi SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_mpi.c LABELS mpi
                LIBS beit_distributed Threads::Threads ARGS --expect-world 1)
  set_tests_properties(test_mpi PROPERTIES TIMEOUT 120)
  if(BEIT_USE_MPI)
    find_package(MPI REQUIRED COMPONENTS C)
    foreach(np 2 3)
      add_test(NAME test_mpi_np${np}
               COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe -np ${np}
                       $<TARGET_FILE:test_mpi> --expect-world ${np} --single-node)
      set_tests_properties(test_mpi_np${np} PROPERTIES LABELS mpi TIMEOUT 300 PROCESSORS ${np}
                           ENVIRONMENT "OMP_NUM_THREADS=1")
    endforeach()
    foreach(mode abort kill stop)
      add_test(NAME test_mpi_fault_${mode}
               COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_fault.sh ${MPIEXEC_EXECUTABLE}
                       $<TARGET_FILE:test_mpi> ${mode})
      set_tests_properties(test_mpi_fault_${mode} PROPERTIES LABELS mpi TIMEOUT 120 PROCESSORS 2
                           ENVIRONMENT "OMP_NUM_THREADS=1")
    endforeach()
  endif()
endif()
