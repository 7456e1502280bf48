# The dVAE tokenizer: core/conv.h kernels (unit + gradcheck), the tokenizer model, its loss and
# training step, the golden test against tools/dvae_ref.py and the DALL-E parity test.
beit_add_test(NAME test_conv SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv.c
              ${CMAKE_CURRENT_SOURCE_DIR}/testing_conv.c LABELS unit)
# bf16 convolutions against the float32 naive twins on bf16-rounded operands; exit 77 = skipped
# on a CPU without bf16 matrix products.
beit_add_test(NAME test_conv_bf16 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv_bf16.c
              ${CMAKE_CURRENT_SOURCE_DIR}/testing_conv.c LABELS unit)
set_tests_properties(test_conv_bf16 PROPERTIES SKIP_RETURN_CODE 77)
beit_add_test(NAME test_conv_gradcheck SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_conv_gradcheck.c
              LABELS gradcheck)
beit_add_test(NAME test_tokenizer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c
              ${CMAKE_CURRENT_SOURCE_DIR}/testing_tokenizer.c LABELS unit LIBS beit_tokenizer)
# The tokenizer in bf16 against fp32 on the same weights: precision switching, a DALL-E-shaped
# encoder's logits and tokens, a short training run; exit 77 = skipped without bf16 products.
beit_add_test(NAME test_tokenizer_bf16 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_bf16.c
              ${CMAKE_CURRENT_SOURCE_DIR}/testing_tokenizer.c LABELS unit LIBS beit_tokenizer)
set_tests_properties(test_tokenizer_bf16 PROPERTIES SKIP_RETURN_CODE 77)

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

# DALL-E import and parity: tests/test_convert_dalle.py pickles a DALL-E-shaped model as OpenAI
# does, converts it with tools/convert_dalle.py (checking every tensor and the error paths) and
# writes the PyTorch reference's logits/tokens/reconstructions; the C encoder must give the same
# token ids except at near-ties. Default: DALL-E's structure at small widths (seconds). The full
# 53.8M-parameter DALL-E size takes minutes: enabled by -DBEIT_TOKENIZER_SLOW_TESTS=ON, label slow.
option(BEIT_TOKENIZER_SLOW_TESTS "Register the full-size DALL-E parity test (minutes)" OFF)
set(BEIT_TOK_PARITY ${CMAKE_CURRENT_BINARY_DIR}/parity_tokenizer)
add_test(NAME tokenizer_convert_dalle
         COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_convert_dalle.py
                 ${BEIT_TOK_PARITY}/small)
set_tests_properties(tokenizer_convert_dalle PROPERTIES FIXTURES_SETUP parity_tokenizer
                     LABELS golden)
beit_add_test(NAME test_tokenizer_parity
              SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_parity.c
              LABELS golden LIBS beit_tokenizer ARGS ${BEIT_TOK_PARITY}/small)
set_tests_properties(test_tokenizer_parity PROPERTIES FIXTURES_REQUIRED parity_tokenizer)
if(BEIT_TOKENIZER_SLOW_TESTS)
  add_test(NAME tokenizer_convert_dalle_full
           COMMAND ${BEIT_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_convert_dalle.py
                   ${BEIT_TOK_PARITY}/full --full --images 8)
  set_tests_properties(tokenizer_convert_dalle_full PROPERTIES
                       FIXTURES_SETUP parity_tokenizer_full LABELS slow TIMEOUT 1800)
  add_test(NAME test_tokenizer_parity_full COMMAND test_tokenizer_parity ${BEIT_TOK_PARITY}/full)
  set_tests_properties(test_tokenizer_parity_full PROPERTIES
                       FIXTURES_REQUIRED parity_tokenizer_full LABELS slow TIMEOUT 1800
                       ENVIRONMENT "OMP_NUM_THREADS=2")
endif()
beit_add_test(NAME test_tokenizer_gradcheck
              SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_gradcheck.c LABELS gradcheck
              LIBS beit_tokenizer)
# e2e: the CLI on Fashion-MNIST's test split (pack, train + resume, recon grid, encode/recon files).
add_test(NAME test_tokenizer_e2e
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_e2e.sh $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_e2e ${PROJECT_SOURCE_DIR}/tools)
set_tests_properties(test_tokenizer_e2e PROPERTIES LABELS e2e TIMEOUT 600
                     ENVIRONMENT "OMP_NUM_THREADS=2;BEIT_PYTHON=${BEIT_PYTHON}")
# mpi: tokenizer training on 2 ranks x B equals 1 rank x 2B; resume across rank counts.
if(BEIT_USE_MPI)
  find_package(MPI REQUIRED COMPONENTS C)
  include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
  beit_add_script_test(NAME test_mpi_tokenizer MPI LABELS "mpi;e2e" PROPERTIES TIMEOUT 600)
endif()
