# Fine-tuning, evaluation, probing and export (encoder/transfer.c, mim/finetune.c, mim/metrics.c,
# mim/eval.c, mim/mixup.c, mim/probe.c, apps/cmd_{finetune,eval,probe,export}.c).
beit_add_test(NAME test_transfer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_transfer.c
              LABELS unit LIBS beit_encoder ARGS ${CMAKE_CURRENT_BINARY_DIR}/transfer)
if(TARGET beit_mim)
  beit_add_test(NAME test_metrics SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics.c
                LABELS unit LIBS beit_mim)
endif()
if(TARGET beit_mim)
  beit_add_test(NAME test_finetune SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_finetune.c
                LABELS unit LIBS beit_mim)
endif()
