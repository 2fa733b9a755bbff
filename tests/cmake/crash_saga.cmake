# The second crash scenario: test_crash_saga SIGKILLs loom_crash_saga_child
# while it runs a saga, a sub-workflow and a wait step completed by a signal.
# Included by tests/CMakeLists.txt.
add_executable(loom_crash_saga_child ${CMAKE_CURRENT_SOURCE_DIR}/reliability/crash_saga_child.cpp)
target_link_libraries(loom_crash_saga_child PRIVATE loom_crash_support)   # crash.cmake
target_link_libraries(test_crash_saga PRIVATE loom_crash_support loom_crash_torture)
target_compile_definitions(test_crash_saga PRIVATE
  LOOM_CRASH_SAGA_CHILD="$<TARGET_FILE:loom_crash_saga_child>")
add_dependencies(test_crash_saga loom_crash_saga_child)
