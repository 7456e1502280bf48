# beit pretrain end to end: exact resume after SIGKILL and SIGTERM, complete checkpoints.
add_test(NAME test_pretrain_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_pretrain_e2e.py $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/pretrain_e2e)
set_tests_properties(test_pretrain_e2e PROPERTIES LABELS e2e TIMEOUT 900)
beit_add_test(NAME test_trainer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_trainer.c LABELS unit
              LIBS beit_mim)
