# Storage-fault tests: test_faults runs workflows on SqliteStore through a
# SQLite VFS that fails chosen reads, writes, syncs, truncates and size queries
# (tests/support/fault_vfs.cpp).
target_sources(test_faults PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support/fault_vfs.cpp)
