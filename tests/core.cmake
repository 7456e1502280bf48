# core/: kernels against their naive twins, gradient checks of every backward, the optimizer.
beit_add_test(NAME test_kernels   SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_kernels.c   LABELS unit)
beit_add_test(NAME test_gradcheck SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c LABELS gradcheck)
beit_add_test(NAME test_gemm      SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gemm.c      LABELS unit)
beit_add_test(NAME test_optim     SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_optim.c     LABELS unit)
# Checkpoints under faults: --resume skips damaged or unmarked folders with a warning, a failed
# save (a file size limit) names the file and leaves the earlier checkpoints intact.
beit_add_test(NAME test_checkpoint SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_checkpoint.c LABELS unit)
