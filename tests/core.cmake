# core/: kernels against their naive twins, gradient checks of every backward, the optimizer.
beit_add_test(NAME test_kernels   SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_kernels.c   LABELS unit)
beit_add_test(NAME test_gradcheck SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c LABELS gradcheck)
beit_add_test(NAME test_gemm      SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gemm.c      LABELS unit)
beit_add_test(NAME test_gemm_teams SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gemm_teams.c
              LABELS unit)
set_tests_properties(test_gemm_teams PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_THREAD_LIMIT=1"
                     TIMEOUT 60)
beit_add_test(NAME test_optim     SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_optim.c     LABELS unit)
# Float32 subnormals read and written as zero on every thread (they made a fine-tuning 2x slower).
find_package(Threads REQUIRED)
beit_add_test(NAME test_denormals SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_denormals.c LABELS unit
              LIBS Threads::Threads)
# Checkpoints under faults: --resume skips damaged or unmarked folders with a warning, a failed
# save (a file size limit) names the file and leaves the earlier checkpoints intact.
beit_add_test(NAME test_checkpoint SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_checkpoint.c LABELS unit)
# The portable build's kernels (core/isa.h), from beit's disassembly: no instruction beyond
# baseline x86-64 outside GCC's clones, AVX-512 clones of the hot kernels that use zmm registers,
# AVX2 clones that use ymm, no clone calling a baseline helper (about a second).
if(BEIT_ISA_CLONES AND CMAKE_OBJDUMP)
  add_test(NAME test_isa_clones
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_isa_clones.py
                   $<TARGET_FILE:beit> --objdump ${CMAKE_OBJDUMP})
  set_tests_properties(test_isa_clones PROPERTIES LABELS unit TIMEOUT 120)
endif()
