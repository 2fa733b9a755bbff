# Fuzzing Workflow::from_json and the condition language. Included by
# tests/CMakeLists.txt.
#
# Always: test_fuzz_regressions (a normal test_*.cpp) replays the seed corpora and
# every crash the fuzzers found; it needs to know where they are.
target_compile_definitions(test_fuzz_regressions PRIVATE
  LOOM_FUZZ_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz")

# With LOOM_BUILD_FUZZERS (clang only, its own build tree; tests/fuzz/run.sh
# configures build-fuzz/): the libFuzzer targets, with the library compiled for
# coverage and ASan + UBSan as well, so the fuzzers see and check its code.
option(LOOM_BUILD_FUZZERS "Build Loom's libFuzzer targets (needs clang)" OFF)
if(LOOM_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LOOM_BUILD_FUZZERS needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: "
                        "configure a separate tree with -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  set(loom_fuzz_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=all
                           -fno-omit-frame-pointer)
  target_compile_options(loom PRIVATE -fsanitize=fuzzer-no-link ${loom_fuzz_sanitizers})
  target_link_options(loom INTERFACE ${loom_fuzz_sanitizers})

  foreach(target IN ITEMS fuzz_definition fuzz_expression)
    add_executable(${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}.cpp)
    target_link_libraries(${target} PRIVATE loom::loom loom_warnings)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer ${loom_fuzz_sanitizers})
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  endforeach()
  # The expression target checks internals (src/model/expression.hpp).
  target_include_directories(fuzz_expression PRIVATE ${PROJECT_SOURCE_DIR}/src)
endif()
