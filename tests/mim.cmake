# mim: masking (mim/masking.c, spec 8) and per-sample drop path (mim/drop_path.c).
if(TARGET beit_mim)
  beit_add_test(NAME test_drop_path SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_drop_path.c
                LABELS unit LIBS beit_mim)
  beit_add_test(NAME test_masking SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_masking.c
                LABELS unit LIBS beit_mim)

  # test_masking_vs_ref: tools/masking_ref.py (Python's random, no torch) draws the reference
  # distributions into the build folder (fixture setup tests), then the same test binary draws
  # the C ones and compares them. 5x9 is non-square so a swapped height/width shows; 7x10 with
  # max_num_patches 8 exercises the per-block cap.
  set(_refs)
  foreach(cfg "14x14;14;14;75;16;0" "5x9;5;9;12;4;0" "7x10;7;10;30;4;8")
    list(GET cfg 0 _tag)
    list(GET cfg 1 _h)
    list(GET cfg 2 _w)
    list(GET cfg 3 _budget)
    list(GET cfg 4 _min)
    list(GET cfg 5 _max)
    set(_json ${CMAKE_CURRENT_BINARY_DIR}/masking_ref_${_tag}.json)
    add_test(NAME masking_ref_${_tag}
             COMMAND ${BEIT_PYTHON} ${PROJECT_SOURCE_DIR}/tools/masking_ref.py
                     --height ${_h} --width ${_w} --budget ${_budget} --min-patches ${_min}
                     --max-patches ${_max} --draws 20000 --seed 1 --out ${_json})
    set_tests_properties(masking_ref_${_tag} PROPERTIES LABELS unit FIXTURES_SETUP masking_ref)
    list(APPEND _refs --ref ${_json})
  endforeach()
  add_test(NAME test_masking_vs_ref COMMAND test_masking ${_refs}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test_masking_vs_ref PROPERTIES LABELS unit FIXTURES_REQUIRED masking_ref)
endif()
