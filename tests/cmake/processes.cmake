# Many processes, one store: test_processes runs worker processes
# (loom_worker_child) on one SQLite file, kills them, and checks ownership.
add_executable(loom_worker_child ${CMAKE_CURRENT_SOURCE_DIR}/reliability/worker_child.cpp)
target_link_libraries(loom_worker_child PRIVATE loom::loom loom_warnings)
target_compile_definitions(test_processes PRIVATE LOOM_WORKER_CHILD="$<TARGET_FILE:loom_worker_child>")
add_dependencies(test_processes loom_worker_child)
target_link_libraries(test_processes PRIVATE loom_crash_support)   # spawns the children (crash.cmake)

# With LOOM_WITH_POSTGRES, the cases also run on the test server of
# postgres.cmake (fixture loom_pg): the workers open the connection string
# they are given instead of a file.
if(LOOM_WITH_POSTGRES)
  foreach(target test_processes loom_worker_child)
    target_link_libraries(${target} PRIVATE loom::postgres PkgConfig::LIBPQXX)
    target_compile_definitions(${target} PRIVATE LOOM_TEST_POSTGRES=1)
  endforeach()
  file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/processes_tests.cmake CONTENT "
if(test_processes_TESTS)
  set_tests_properties(\${test_processes_TESTS} PROPERTIES FIXTURES_REQUIRED loom_pg
    ENVIRONMENT \"${loom_pg_env};LOOM_PG_DIR=${loom_pg_dir};LOOM_PG_URL=host=${loom_pg_dir} dbname=loom user=postgres\")
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${CMAKE_CURRENT_BINARY_DIR}/processes_tests.cmake)
endif()
