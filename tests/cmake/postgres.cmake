# The PostgreSQL store's tests (LOOM_WITH_POSTGRES): the conformance suite's
# PostgresFixture cases (test_store) and test_postgres_store, each against a
# private server that a CTest fixture starts before them and stops after them,
# also when one fails. test_postgres_store crashes and restarts its server, so
# it gets a server of its own and its cases run one at a time.
if(NOT LOOM_WITH_POSTGRES)
  return()
endif()

foreach(target test_store test_postgres_store)
  target_link_libraries(${target} PRIVATE loom::postgres PkgConfig::LIBPQXX)
  target_compile_definitions(${target} PRIVATE LOOM_TEST_POSTGRES=1)
endforeach()

# Short, per build tree: a unix socket's path is limited to about 100 bytes.
string(MD5 loom_pg_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${loom_pg_hash}" 0 10 loom_pg_hash)
set(loom_pg_script ${CMAKE_CURRENT_LIST_DIR}/../support/pg_server.sh)

# A server in `dir` as the CTest fixture `name`: started before the tests that
# require it, stopped (and `dir` removed) after them.
# `start` is start, or start-alone for a server the tests crash (another ctest
# run in this build tree waits for it).
function(loom_pg_server name dir start)
  add_test(NAME ${name}_start COMMAND bash ${loom_pg_script} ${start} ${dir})
  add_test(NAME ${name}_stop COMMAND bash ${loom_pg_script} stop ${dir})
  set_tests_properties(${name}_start PROPERTIES FIXTURES_SETUP ${name} TIMEOUT 660)
  set_tests_properties(${name}_stop PROPERTIES FIXTURES_CLEANUP ${name} TIMEOUT 60)
endfunction()

set(loom_pg_dir /tmp/loom-pg-${loom_pg_hash})
set(loom_pg_restart_dir /tmp/loom-pgr-${loom_pg_hash})
loom_pg_server(loom_pg ${loom_pg_dir} start)
loom_pg_server(loom_pg_restart ${loom_pg_restart_dir} start-alone)

# Catch's discovered tests exist only when CTest runs, so their properties are
# set by a script CTest includes after Catch's (TEST_INCLUDE_FILES), from the
# lists Catch leaves in <target>_TESTS.
set(loom_pg_env "LOOM_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;LOOM_PG_SERVER=${loom_pg_script}")
file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/postgres_tests.cmake CONTENT "
set(loom_pg_tests \${test_store_TESTS})
list(FILTER loom_pg_tests INCLUDE REGEX \"PostgresFixture\")
if(loom_pg_tests)
  set_tests_properties(\${loom_pg_tests} PROPERTIES FIXTURES_REQUIRED loom_pg
    ENVIRONMENT \"${loom_pg_env};LOOM_PG_DIR=${loom_pg_dir};LOOM_PG_URL=host=${loom_pg_dir} dbname=loom user=postgres\")
endif()
if(test_postgres_store_TESTS)
  set_tests_properties(\${test_postgres_store_TESTS} PROPERTIES FIXTURES_REQUIRED loom_pg_restart
    RESOURCE_LOCK loom_pg_restart
    ENVIRONMENT \"${loom_pg_env};LOOM_PG_DIR=${loom_pg_restart_dir};LOOM_PG_URL=host=${loom_pg_restart_dir} dbname=loom user=postgres\")
endif()
")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${CMAKE_CURRENT_BINARY_DIR}/postgres_tests.cmake)
