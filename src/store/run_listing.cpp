#include "store/run_listing.hpp"

#include <algorithm>

#include "store/store_support.hpp"

namespace loom::detail {

RunListing run_listing(const RunFilter& filter, char mark, const std::string& id_column) {
    RunListing out;
    std::vector<std::string> conditions;
    auto param = [&](std::variant<std::int64_t, std::string> value) {
        out.params.push_back(std::move(value));
        return std::string(1, mark) + std::to_string(out.params.size());
    };
    if (filter.workflow_name) conditions.push_back("workflow_name = " + param(*filter.workflow_name));
    if (filter.status) conditions.push_back("status = " + param(std::string(to_string(*filter.status))));
    if (filter.since) conditions.push_back("created_at >= " + param(to_millis(*filter.since)));
    if (filter.until) conditions.push_back("created_at < " + param(to_millis(*filter.until)));
    if (filter.finished_before)
        conditions.push_back("status != 'running' AND finished_at < " + param(to_millis(*filter.finished_before)));
    if (filter.after) {
        // A row value: both databases seek the index to it.
        const std::string at = param(to_millis(filter.after->created_at));
        conditions.push_back("(created_at, " + id_column + ") < (" + at + ", " + param(filter.after->id) + ")");
    }
    for (std::size_t i = 0; i < conditions.size(); ++i) out.clauses += (i == 0 ? " WHERE " : " AND ") + conditions[i];
    const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(filter.limit, INT64_MAX));
    out.clauses += " ORDER BY created_at DESC, " + id_column + " DESC LIMIT " + param(limit);
    return out;
}

}  // namespace loom::detail
