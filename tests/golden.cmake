# Golden tests against the PyTorch reference in tools/ (label: golden).
# golden_encoder_fixtures writes the encoder fixtures (tools/golden_encoder.py, float64 reference)
# into ${CMAKE_CURRENT_BINARY_DIR}/golden/<case>/ for the C tests that declare
# FIXTURES_REQUIRED golden_encoder; convert_checkpoint self-tests the unilm/timm/HF converter,
# the safetensors reader/writer and the reference's spec anchors.
add_test(NAME golden_encoder_fixtures
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/golden_encoder.py
                 --out ${CMAKE_CURRENT_BINARY_DIR}/golden)
set_tests_properties(golden_encoder_fixtures PROPERTIES FIXTURES_SETUP golden_encoder LABELS golden)

add_test(NAME convert_checkpoint
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_convert.py)
set_tests_properties(convert_checkpoint PROPERTIES LABELS golden)
