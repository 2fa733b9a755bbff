# test_examples tests the examples' workflows and handlers (examples/*.hpp)
# with the testing kit.
target_include_directories(test_examples PRIVATE ${PROJECT_SOURCE_DIR}/examples)
