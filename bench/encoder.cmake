# Encoder training-step and inference benchmark (C side; bench/run_encoder.sh adds PyTorch).
add_executable(bench_encoder ${CMAKE_CURRENT_SOURCE_DIR}/bench_encoder.c)
target_include_directories(bench_encoder PRIVATE ${CBLAS_INCLUDE})
target_link_libraries(bench_encoder PRIVATE beit_encoder beit_internal_for_tests)
# Matrix-product backend: float32 (OpenBLAS) and bfloat16 (oneDNN) GFLOP/s on BEiT's shapes.
add_executable(bench_gemm ${CMAKE_CURRENT_SOURCE_DIR}/bench_gemm.c)
target_link_libraries(bench_gemm PRIVATE beit_core)
