# The load benchmark (tests/bench/loom_load.cpp, built with the benchmarks) in
# miniature, so it cannot rot: 2 x 300 runs, every one must complete. Included by
# tests/CMakeLists.txt; the full 2 x 10,000 runs is a benchmark, not a test.
if(LOOM_BUILD_BENCHMARKS)
  add_test(NAME load.smoke
    COMMAND $<TARGET_FILE:loom_load> --runs 300 --batches 2 --sync normal
            --dir ${CMAKE_CURRENT_BINARY_DIR}/tmp/load-smoke)
  set_tests_properties(load.smoke PROPERTIES LABELS bench TIMEOUT 300)
endif()
