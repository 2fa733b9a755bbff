// Retention: final runs past their age are deleted page by page, keeping the
// children that an unfinished parent still reads.
#include <map>

#include <fmt/format.h>

#include "engine/executor_impl.hpp"

namespace loom {

namespace {
// Runs deleted per transaction: a purge of millions never holds the store's
// write lock long.
constexpr std::size_t kPurgePage = 500;
}  // namespace

std::size_t Executor::Impl::purge(TimePoint finished_before) {
    RunFilter filter;
    filter.finished_before = finished_before;
    filter.limit = kPurgePage;
    std::size_t deleted = 0;
    for (;;) {
        const auto page = store_.list_runs(filter);
        std::map<RunId, bool> unfinished;   // parents looked up in this page
        auto is_unfinished = [&](const RunId& id) {
            auto [it, fresh] = unfinished.emplace(id, false);
            if (fresh) {
                auto run = store_.load_run(id);
                it->second = run && !is_final(run->status);
            }
            return it->second;
        };
        std::vector<RunId> ids;
        for (const RunInfo& run : page) {
            // A child's id is its parent's, a dot and the step (child_run_id):
            // any prefix up to a dot may be the parent.
            bool keep = false;
            for (auto dot = run.id.rfind('.'); dot != RunId::npos && dot > 0 && !keep;
                 dot = run.id.rfind('.', dot - 1))
                keep = is_unfinished(run.id.substr(0, dot));
            if (!keep) ids.push_back(run.id);
        }
        deleted += store_.delete_runs(ids);
        if (page.size() < kPurgePage) return deleted;
        filter.after = RunCursor::after(page.back());
    }
}

void Executor::Impl::purge_expired() {
    try {
        purge(now() - *options_.retention);
    } catch (const std::exception& e) {
        report(LogRecord{LogLevel::warn, "", "", 0,
                         fmt::format("retention: deleting runs that finished over {} ms ago failed (tried again in "
                                     "{} ms): {}",
                                     options_.retention->count(), options_.retention_every.count(), e.what()),
                         std::nullopt});
    }
}

}  // namespace loom
