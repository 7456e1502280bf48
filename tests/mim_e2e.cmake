# beit pretrain end to end: exact resume after SIGKILL and SIGTERM, complete checkpoints.
add_test(NAME test_pretrain_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_pretrain_e2e.py $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/pretrain_e2e)
set_tests_properties(test_pretrain_e2e PROPERTIES LABELS e2e TIMEOUT 900)
beit_add_test(NAME test_trainer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_trainer.c LABELS unit
              LIBS beit_mim)
if(BEIT_USE_MPI)
  find_package(MPI REQUIRED COMPONENTS C)
  add_test(NAME test_mpi_pretrain
           COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_mpi_pretrain.py
                   $<TARGET_FILE:beit> ${MPIEXEC_EXECUTABLE} ${CMAKE_CURRENT_BINARY_DIR}/mpi_pretrain)
  set_tests_properties(test_mpi_pretrain PROPERTIES LABELS "mpi;e2e" TIMEOUT 1200)
endif()
# The precision policy of beit pretrain (--precision, recipe key `precision`): fp32 and bf16 runs
# of the small Fashion-MNIST model say and record what they computed in, bf16 resumes exactly,
# and under ONEDNN_MAX_CPU_ISA=AVX2 auto is fp32 and bf16 an error naming the ISA.
add_test(NAME test_precision_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_precision_e2e.py $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/precision_e2e)
set_tests_properties(test_precision_e2e PROPERTIES LABELS e2e TIMEOUT 300)
