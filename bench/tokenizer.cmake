# dVAE tokenizer: DALL-E encoder forward and the default tokenizer's training step, each against
# PyTorch (tools/dvae_ref.py) in the same run; per-layer conv GFLOP/s and fraction of sgemm peak.
if(TARGET beit_tokenizer)
  add_executable(bench_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/bench_tokenizer.c)
  target_include_directories(bench_tokenizer PRIVATE ${CBLAS_INCLUDE})
  target_compile_definitions(bench_tokenizer PRIVATE
    BEIT_BENCH_DVAE_REF="${PROJECT_SOURCE_DIR}/tools/dvae_ref.py"
    BEIT_BENCH_TRAIN_CONFIG="${PROJECT_SOURCE_DIR}/configs/tokenizer/fashion_mnist.json")
  target_link_libraries(bench_tokenizer PRIVATE beit_tokenizer beit_core beit_internal_for_tests)
endif()
