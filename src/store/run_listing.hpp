// The SQL of list_runs, one place for the SQL stores: which filters become
// which conditions, and the newest-first keyset order that pages continue.
// Internal.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <loom/run.hpp>

namespace loom::detail {

struct RunListing {
    /// " WHERE ... ORDER BY ... LIMIT <n>", parameters written `<mark><n>`
    /// from 1 (SQLite's ?1, PostgreSQL's $1).
    std::string clauses;
    std::vector<std::variant<std::int64_t, std::string>> params;
};

/// `id_column`: how the run id is compared and sorted (PostgreSQL needs a
/// byte order, `id COLLATE "C"`, to agree with the other stores).
RunListing run_listing(const RunFilter& filter, char mark, const std::string& id_column);

}  // namespace loom::detail
