# The docs cannot rot: every C++ block in README.md and docs/*.md is a copy of
# code marked in an example or a test source, which the build compiles and
# ctest runs (docs.snippets); every relative link points at a file and heading
# that exist (docs.links); every error id the code uses is in docs/08-errors.md
# (docs.error_ids); every history event kind is a constant of
# include/loom/events.hpp, documented in docs/05-operations.md (docs.event_kinds). Self-tests prove that the first two fail on a doc that
# breaks them. Included by tests/CMakeLists.txt.
file(GLOB loom_docs RELATIVE ${PROJECT_SOURCE_DIR} CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
list(PREPEND loom_docs README.md)

add_test(NAME docs.snippets
  COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR} "-DDOCS=${loom_docs}"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_doc_snippets.cmake)
add_test(NAME docs.links
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_doc_links.sh ${PROJECT_SOURCE_DIR} ${loom_docs})
add_test(NAME docs.error_ids
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_error_ids.sh ${PROJECT_SOURCE_DIR})
add_test(NAME docs.event_kinds
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_event_kinds.sh ${PROJECT_SOURCE_DIR})

# A block that differs from its source, and one without a marker, must fail the check.
set(fixtures tests/docs/fixtures)
add_test(NAME docs.snippets_detects_drift
  COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR} -DDOCS=${fixtures}/drift.md
          -P ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_doc_snippets.cmake)
add_test(NAME docs.snippets_detects_unmarked
  COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR} -DDOCS=${fixtures}/unmarked.md
          -P ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_doc_snippets.cmake)
add_test(NAME docs.links_detects_broken
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_doc_links.sh ${PROJECT_SOURCE_DIR}
          ${fixtures}/broken_links.md)
set_tests_properties(docs.snippets_detects_drift PROPERTIES
  PASS_REGULAR_EXPRESSION "drift.md: C\\+\\+ block 2 differs from")
set_tests_properties(docs.snippets_detects_unmarked PROPERTIES
  PASS_REGULAR_EXPRESSION "unmarked.md: C\\+\\+ block 1 has no")
set_tests_properties(docs.links_detects_broken PROPERTIES
  PASS_REGULAR_EXPRESSION "2 broken link\\(s\\) of 4")
set_tests_properties(docs.snippets docs.links docs.error_ids docs.event_kinds docs.snippets_detects_drift docs.snippets_detects_unmarked
  docs.links_detects_broken PROPERTIES LABELS docs)
