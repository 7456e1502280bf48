# Encoder training-step and inference benchmark (C side; bench/run_encoder.sh adds PyTorch).
add_executable(bench_encoder ${CMAKE_CURRENT_SOURCE_DIR}/bench_encoder.c)
target_include_directories(bench_encoder PRIVATE ${CBLAS_INCLUDE})
target_link_libraries(bench_encoder PRIVATE beit_encoder)
