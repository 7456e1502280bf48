# Fine-tuning, evaluation, probing and export (encoder/transfer.c, mim/finetune.c, mim/metrics.c,
# mim/eval.c, mim/mixup.c, mim/probe.c, apps/cmd_{finetune,eval,probe,export}.c), and the one
# preprocessing of a model (data/preprocess.c) across eval, predict, serve, run and export.
beit_add_test(NAME test_transfer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_transfer.c
              LABELS unit LIBS beit_encoder ARGS ${CMAKE_CURRENT_BINARY_DIR}/transfer)
if(TARGET beit_mim)
  beit_add_test(NAME test_metrics SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics.c
                LABELS unit LIBS beit_mim)
endif()
if(TARGET beit_mim)
  beit_add_test(NAME test_finetune SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_finetune.c
                LABELS unit LIBS beit_mim ARGS ${PROJECT_SOURCE_DIR})
endif()

# Golden: tools/golden_finetune.py writes the reference (transfer, layer decay, label smoothing,
# multi-label BCE, Mixup soft targets, 3 AdamW steps) that test_finetune_golden must match.
add_test(NAME golden_finetune_fixtures
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/golden_finetune.py
                 --out ${CMAKE_CURRENT_BINARY_DIR}/golden_finetune)
set_tests_properties(golden_finetune_fixtures PROPERTIES FIXTURES_SETUP golden_finetune
                     LABELS golden)
if(TARGET beit_mim)
  beit_add_test(NAME test_finetune_golden
                SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_finetune_golden.c
                LABELS golden LIBS beit_mim
                ARGS ${CMAKE_CURRENT_BINARY_DIR}/golden_finetune mim_to_cls timm_multilabel
                     mixup_soft)
  set_tests_properties(test_finetune_golden PROPERTIES FIXTURES_REQUIRED golden_finetune)
endif()

# Export round trip through the PyTorch reference (and timm names through the converter).
include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
beit_add_script_test(NAME test_export_e2e LABELS "e2e;golden" PROPERTIES TIMEOUT 300)

# beit finetune / eval / probe end to end (subset, exact resume, --init MIM, multi-label).
beit_add_script_test(NAME test_finetune_e2e LABELS e2e PROPERTIES TIMEOUT 900)

# One preprocessing per model: every fine-tuning checkpoint's preprocessor_config.json says its
# recipe's eval transform (direct and centre-crop recipes), export copies it, and eval
# --predictions, predict, serve and run agree on each image (within 1e-5); seconds.
set(BEIT_PREPROCESS_E2E_ARGS "")
if(NOT BEIT_BUILD_SERVER)
  set(BEIT_PREPROCESS_E2E_ARGS --no-serve)
endif()
beit_add_script_test(NAME test_preprocess_e2e ARGS ${BEIT_PREPROCESS_E2E_ARGS}
                     LABELS e2e PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")

# 2 ranks x B equals 1 rank x 2B for fine-tuning; merged evaluation under MPI.
if(BEIT_USE_MPI)
  find_package(MPI REQUIRED COMPONENTS C)
  beit_add_script_test(NAME test_mpi_finetune MPI LABELS "mpi;e2e" PROPERTIES TIMEOUT 600)
endif()
