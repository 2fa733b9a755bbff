# The crash tests: test_crash SIGKILLs loom_crash_child while it runs a
# parallel workflow (and test_crash_saga its own child, crash_saga.cmake).
# Included by tests/CMakeLists.txt.
#
# What the crash tests, test_contention and the child processes share:
# spawning and waiting for a child, its ledger, and the failpoints (from src/).
add_library(loom_crash_support OBJECT ${CMAKE_CURRENT_SOURCE_DIR}/support/crash_child.cpp)
target_include_directories(loom_crash_support
  PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}
  PRIVATE ${PROJECT_SOURCE_DIR}/src)   # runtime/failpoint.hpp
target_link_libraries(loom_crash_support PUBLIC loom::loom loom_warnings)

# What the two crash tests share: the crash-torture harness (trials, kills,
# the ledger and the store at each kill, the checks both make).
add_library(loom_crash_torture OBJECT ${CMAKE_CURRENT_SOURCE_DIR}/support/crash_torture.cpp)
target_link_libraries(loom_crash_torture PUBLIC loom_crash_support loom_test_support SQLiteCpp)

add_executable(loom_crash_child ${CMAKE_CURRENT_SOURCE_DIR}/reliability/crash_child.cpp)
target_link_libraries(loom_crash_child PRIVATE loom_crash_support)
target_link_libraries(test_crash PRIVATE loom_crash_support loom_crash_torture)
target_compile_definitions(test_crash PRIVATE LOOM_CRASH_CHILD="$<TARGET_FILE:loom_crash_child>")
add_dependencies(test_crash loom_crash_child)
