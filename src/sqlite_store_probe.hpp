// Test access to a SqliteStore's own connections, whose per-connection settings
// (PRAGMA synchronous) no other connection can see. Internal; a friend of SqliteStore.
#pragma once

#include <string>

#include <loom/sqlite_store.hpp>

namespace loom::detail {

struct SqliteStoreProbe {
    /// `PRAGMA <name>` on the store's writer connection, as text.
    static std::string writer_pragma(SqliteStore& store, const std::string& name);
};

}  // namespace loom::detail
