# Many processes, one store: test_processes runs worker processes
# (loom_worker_child) on one SQLite file, kills them, and checks ownership.
add_executable(loom_worker_child ${CMAKE_CURRENT_SOURCE_DIR}/reliability/worker_child.cpp)
target_link_libraries(loom_worker_child PRIVATE loom::loom loom_warnings)
target_compile_definitions(test_processes PRIVATE LOOM_WORKER_CHILD="$<TARGET_FILE:loom_worker_child>")
add_dependencies(test_processes loom_worker_child)
target_link_libraries(test_processes PRIVATE loom_crash_support)   # spawns the children (crash.cmake)
