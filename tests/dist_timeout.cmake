# The collectives' deadline (issue 13 point 3): a stuck rank ends the job instead of hanging it.
# test_dist_policy: --dist-timeout parsing, the recipe key distributed.timeout_s (pretraining and
# fine-tuning recipes, the tokenizer training config), the command line over the recipe.
# test_mpi_timeout_e2e: 3-rank pretraining, a rank stopped (SIGSTOP) after the first checkpoint;
# the job ends non-zero within the deadline + 30 s naming that rank, the checkpoint is whole, and
# --resume continues to the end with the losses of an uninterrupted run, bit for bit.
# (tests/mpi.cmake test_mpi_fault_stop: the same at the level of distributed/.)
if(TARGET beit_mim)
  beit_add_test(NAME test_dist_policy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_dist_policy.c
                LABELS unit LIBS beit_mim)
endif()
if(BEIT_USE_MPI)
  find_package(MPI REQUIRED COMPONENTS C)
  include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
  beit_add_script_test(NAME test_mpi_timeout_e2e MPI LABELS "mpi;e2e" PROPERTIES TIMEOUT 300
                       PROCESSORS 3 ENVIRONMENT "OMP_NUM_THREADS=1")
endif()
