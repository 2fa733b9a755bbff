# README.md's "Testing your steps" example is the first block of
# tests/test_testing.cpp, compiled and run there; this test fails when the
# README's copy differs from it, so the README cannot rot. Included by
# tests/CMakeLists.txt.
add_test(NAME testing.readme_example
  COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md
          -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/test_testing.cpp
          -P ${CMAKE_CURRENT_SOURCE_DIR}/support/check_readme_example.cmake)
