# The dVAE tokenizer: core/conv.h kernels (unit + gradcheck), the tokenizer model, its loss and
# training step, the golden test against tools/dvae_ref.py and the DALL-E parity test.
beit_add_test(NAME test_conv SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv.c LABELS unit)
beit_add_test(NAME test_conv_gradcheck SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv_gradcheck.c
              LABELS gradcheck)

# Golden: tools/dvae_ref.py writes a small model, images, noise, loss and every gradient (fp64
# reference) for both reconstruction losses; the C side must match them.
set(BEIT_TOK_GOLDEN ${CMAKE_CURRENT_BINARY_DIR}/golden_tokenizer)
add_test(NAME tokenizer_golden_fixtures
         COMMAND sh -c "${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/dvae_ref.py golden ${BEIT_TOK_GOLDEN}/logit_laplace --recon logit_laplace && ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/dvae_ref.py golden ${BEIT_TOK_GOLDEN}/mse --recon mse")
set_tests_properties(tokenizer_golden_fixtures PROPERTIES FIXTURES_SETUP golden_tokenizer
                     LABELS golden)
beit_add_test(NAME test_tokenizer_golden
              SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_golden.c
              LABELS golden LIBS beit_tokenizer
              ARGS ${BEIT_TOK_GOLDEN}/logit_laplace ${BEIT_TOK_GOLDEN}/mse)
set_tests_properties(test_tokenizer_golden PROPERTIES FIXTURES_REQUIRED golden_tokenizer)
