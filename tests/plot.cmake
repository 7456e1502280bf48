# plot/: axes, metrics.jsonl read leniently, the figure's panels and the table.md parser, without
# drawing; then beit plot end to end (the PNG's size and what each panel holds, the documented
# messages for bad input, the bar chart, and the curves.png a short pretraining draws).
beit_add_test(NAME test_plot SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_plot.c LABELS unit
              LIBS beit_plot)
target_include_directories(test_plot PRIVATE ${PROJECT_SOURCE_DIR}/plot)
# exit 77 = skipped: a build without cairo (beit plot says it is unavailable)
add_test(NAME test_plot_e2e
         COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/test_plot_e2e.py $<TARGET_FILE:beit>
                 ${CMAKE_CURRENT_BINARY_DIR}/plot_e2e)
set_tests_properties(test_plot_e2e PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77)
