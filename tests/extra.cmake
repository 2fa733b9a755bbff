# Consumer tests: prove a host can build against Loom the two supported ways.
# Included by tests/CMakeLists.txt. Both pass this build's compiler and flags on,
# so they also hold for the debug and sanitizer presets.
set(loom_consumer_args
  "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}"
  "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}")
set(loom_consumer_run ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run.sh)
set(loom_consumer_work ${CMAKE_CURRENT_BINARY_DIR}/consumer)

add_test(NAME consumer.find_package
  COMMAND bash ${loom_consumer_run} ${PROJECT_BINARY_DIR} ${loom_consumer_work}/find_package
          ${loom_consumer_args})
add_test(NAME consumer.add_subdirectory
  COMMAND bash ${loom_consumer_run} --subdir ${loom_consumer_work}/add_subdirectory
          ${loom_consumer_args})
# They compile on every core: run them alone so they never slow a concurrent test.
set_tests_properties(consumer.find_package consumer.add_subdirectory PROPERTIES
  LABELS consumer RUN_SERIAL TRUE TIMEOUT 900)
