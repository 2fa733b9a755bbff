# Contention: test_contention runs workflows on one SQLite file from several
# threads and, with loom_contention_child, from a second process.
add_executable(loom_contention_child ${CMAKE_CURRENT_SOURCE_DIR}/reliability/contention_child.cpp)
target_link_libraries(loom_contention_child PRIVATE loom::loom loom_warnings)
target_compile_definitions(test_contention PRIVATE
  LOOM_CONTENTION_CHILD="$<TARGET_FILE:loom_contention_child>")
add_dependencies(test_contention loom_contention_child)
target_link_libraries(test_contention PRIVATE loom_crash_support)   # spawns the child (crash.cmake)
