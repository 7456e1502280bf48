# The dVAE tokenizer: core/conv.h kernels (unit + gradcheck), the tokenizer model, its loss and
# training step, the golden test against tools/dvae_ref.py and the DALL-E parity test.
beit_add_test(NAME test_conv SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv.c LABELS unit)
beit_add_test(NAME test_conv_gradcheck SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv_gradcheck.c
              LABELS gradcheck)
