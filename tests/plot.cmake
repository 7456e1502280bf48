# plot/: axes, metrics.jsonl read leniently, the figure's panels and the table.md parser, without
# drawing; then beit plot end to end (the PNG's size and what each panel holds, the documented
# messages for bad input, the bar chart, and the curves.png a short pretraining draws).
beit_add_test(NAME test_plot SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_plot.c LABELS unit
              LIBS beit_plot)
target_include_directories(test_plot PRIVATE ${PROJECT_SOURCE_DIR}/plot)
# exit 77 = skipped: a build without cairo (beit plot says it is unavailable)
include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
beit_add_script_test(NAME test_plot_e2e LABELS e2e PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
