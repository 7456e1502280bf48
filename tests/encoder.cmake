# encoder/: golden test against the PyTorch reference (fixtures written by tools/golden_encoder.py
# in the golden_encoder_fixtures test), and model-folder/config unit tests.
beit_add_test(NAME test_golden_encoder SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_golden_encoder.c
              LABELS golden LIBS beit_encoder
              ARGS ${CMAKE_CURRENT_BINARY_DIR}/golden mim_shared cls_layer_mean cls_abs_cls multilabel)
set_tests_properties(test_golden_encoder PROPERTIES FIXTURES_REQUIRED golden_encoder)
