# README.md's "Testing your steps" examples are the first blocks of test
# sources, compiled and run there; each test fails when the README's copy
# differs from its source, so the README cannot rot. Included by
# tests/CMakeLists.txt.
function(loom_readme_example name block source)   # block: 1 for the section's first ```cpp block
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md -DBLOCK=${block}
            -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/${source}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/support/check_readme_example.cmake)
endfunction()

loom_readme_example(testing.readme_example 1 test_testing.cpp)
loom_readme_example(testing.harness_readme_example 2 test_workflow_harness.cpp)
