# encoder/: golden test against the PyTorch reference (fixtures written by tools/golden_encoder.py
# in the golden_encoder_fixtures test), and model-folder/config unit tests.
beit_add_test(NAME test_golden_encoder SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_golden_encoder.c
              LABELS golden LIBS beit_encoder
              ARGS ${CMAKE_CURRENT_BINARY_DIR}/golden mim_shared cls_layer_mean cls_abs_cls multilabel)
set_tests_properties(test_golden_encoder PROPERTIES FIXTURES_REQUIRED golden_encoder)
# The bf16 matrix-product path on the same fixtures, against float64 and against PyTorch's autocast
# (autocast.safetensors); exit 77 = skipped on a CPU without bf16 matrix products.
beit_add_test(NAME test_golden_bf16 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_golden_bf16.c
              LABELS golden LIBS beit_encoder
              ARGS ${CMAKE_CURRENT_BINARY_DIR}/golden mim_shared cls_layer_mean cls_abs_cls multilabel)
set_tests_properties(test_golden_bf16 PROPERTIES FIXTURES_REQUIRED golden_encoder
                     SKIP_RETURN_CODE 77)

beit_add_test(NAME test_model_io SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_model_io.c
              LABELS unit LIBS beit_encoder
              ARGS ${CMAKE_CURRENT_BINARY_DIR}/model_io ${CMAKE_CURRENT_SOURCE_DIR}/fixtures)
set_tests_properties(test_model_io PROPERTIES FIXTURES_SETUP c_saved_model)
add_test(NAME test_run_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_run_e2e.py $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/golden ${CMAKE_CURRENT_BINARY_DIR}/model_io/c_saved
                 ${CMAKE_CURRENT_BINARY_DIR}/run_e2e)
set_tests_properties(test_run_e2e PROPERTIES LABELS "e2e;golden"
                     FIXTURES_REQUIRED "golden_encoder;c_saved_model")
# `beit info` on BEiT-base: the inference arena is planned, and the program runs with libgomp's
# short spin unless the user chose a wait policy (apps/main.c re-executes itself to set it).
add_test(NAME beit_info_runtime
         COMMAND $<TARGET_FILE:beit> info ${PROJECT_SOURCE_DIR}/configs/models/beit_base_patch16_224.json
                 --batch 8)
set_tests_properties(beit_info_runtime PROPERTIES LABELS e2e
  ENVIRONMENT_MODIFICATION "GOMP_SPINCOUNT=unset:;OMP_WAIT_POLICY=unset:"
  PASS_REGULAR_EXPRESSION "\\(training\\), [0-9.]+ MiB \\(inference\\)\nruntime +[0-9]+ OpenMP threads, GOMP_SPINCOUNT 10000")
# `beit info --json` against `beit info` (parameters, FLOPs, memory, backend, version; no model:
# the build facts only) and `beit help CMD` against `beit CMD --help` for every command.
add_test(NAME test_info_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_info_e2e.py $<TARGET_FILE:beit>)
set_tests_properties(test_info_e2e PROPERTIES LABELS e2e TIMEOUT 60)
# encoder/params.c's initialisation under both schemes: values, bounds, spreads, thread-independence.
beit_add_test(NAME test_init SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_init.c
              LABELS unit LIBS beit_encoder)
