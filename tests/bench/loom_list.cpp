// Listing and purging at scale (issue 12): a SQLite store holding N finished
// runs (10,000 by default, 10 steps each, three workflows, spread over a day)
// and 100 unfinished ones; the time of the first page and of a page deep in
// the listing, for each filter, beside reading every run (the cost a listing
// without an index would pay). Then purge() of the older half.
//
//   loom_list [--runs N] [--page N] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <loom/loom.hpp>

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

const char* kWorkflows[] = {"etl", "report", "billing"};

// The median time of `rounds` calls, in milliseconds.
double median_ms(int rounds, const std::function<std::size_t()>& call, std::size_t& got) {
    std::vector<double> times;
    for (int i = 0; i < rounds; ++i) {
        const auto start = Clock::now();
        got = call();
        times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

loom::RunInfo make_run(int i, loom::TimePoint created, bool finished) {
    loom::RunInfo run;
    run.id = "run-" + std::to_string(i);
    run.workflow_name = kWorkflows[i % 3];
    run.workflow_version = 1;
    run.workflow_hash = "h";
    run.input = {{"n", i}};
    run.created_at = created;
    run.updated_at = created;
    run.status = finished ? (i % 10 == 0 ? loom::RunStatus::failed : loom::RunStatus::completed)
                          : loom::RunStatus::running;
    if (finished) {
        run.finished_at = created + std::chrono::seconds(5);
        run.output = {{"done", i}};
    }
    for (int s = 0; s < 10; ++s) {
        loom::StepInfo step;
        step.step_id = "s" + std::to_string(s);
        step.status = finished ? loom::StepStatus::completed : loom::StepStatus::pending;
        run.steps.push_back(step);
    }
    return run;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 10'000;
    std::size_t page = 50;
    fs::path dir;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--page")) page = static_cast<std::size_t>(std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    }
    if (dir.empty()) dir = fs::temp_directory_path() / ("loom_list." + std::to_string(::getpid()));
    fs::create_directories(dir);
    const auto file = (dir / "runs.db").string();
    fs::remove(file);
    {
        loom::SqliteStore store(file);
        for (const char* name : kWorkflows)
            store.save_workflow(loom::WorkflowRecord{name, 1, "h", {{"name", name}, {"version", 1}, {"steps", {{{"id", "s0"}}}}}, {}});
        const auto day_start = std::chrono::system_clock::now() - std::chrono::hours(24);
        const auto spacing = std::chrono::milliseconds(std::chrono::hours(24)) / (runs + 100);
        loom::Batch batch;
        const auto fill = Clock::now();
        for (int i = 0; i < runs + 100; ++i) {
            batch.new_runs.push_back(make_run(i, day_start + spacing * i, i < runs));
            if (batch.new_runs.size() == 500) {
                store.commit(batch);
                batch.clear();
            }
        }
        if (!batch.empty()) store.commit(batch);
        std::printf("store: %d finished runs, 100 unfinished, 10 steps each; filled in %.1f s\n", runs,
                    std::chrono::duration<double>(Clock::now() - fill).count());

        std::size_t got = 0;
        loom::RunFilter all_runs;
        all_runs.limit = static_cast<std::size_t>(runs) + 100;
        const double scan = median_ms(5, [&] { return store.list_runs(all_runs).size(); }, got);
        std::printf("%-44s %8.3f ms  (%zu runs)\n", "every run (the baseline)", scan, got);

        auto report = [&](const char* what, loom::RunFilter filter) {
            filter.limit = page;
            const double first = median_ms(21, [&] { return store.list_runs(filter).size(); }, got);
            const std::size_t first_got = got;
            // A page deep in the listing: the cursor after its middle run.
            loom::RunFilter every = filter;
            every.limit = SIZE_MAX;
            const auto matching = store.list_runs(every);
            double later = 0;
            if (!matching.empty()) {
                filter.after = loom::RunCursor::after(matching[matching.size() / 2]);
                later = median_ms(21, [&] { return store.list_runs(filter).size(); }, got);
            }
            std::printf("%-44s first page %7.3f ms (%zu), deep page %7.3f ms (%zu): %5.0fx / %5.0fx faster than "
                        "every run\n",
                        what, first, first_got, later, got, scan / first, later > 0 ? scan / later : 0.0);
        };
        report("newest first", {});
        loom::RunFilter by_status;
        by_status.status = loom::RunStatus::failed;
        report("status = failed", by_status);
        loom::RunFilter by_workflow;
        by_workflow.workflow_name = "report";
        report("workflow = report", by_workflow);
        loom::RunFilter by_time;
        by_time.since = std::chrono::system_clock::now() - std::chrono::hours(12);
        by_time.until = std::chrono::system_clock::now() - std::chrono::hours(6);
        report("created 12 h to 6 h ago", by_time);
        loom::RunFilter old;
        old.finished_before = std::chrono::system_clock::now() - std::chrono::hours(12);
        report("finished over 12 h ago", old);
    }
    {
        loom::SqliteStore store(file);
        loom::HandlerRegistry handlers;
        loom::ExecutorOptions options{1};
        options.adopt = false;
        loom::Executor executor(store, handlers, options);
        loom::RunFilter everything;
        everything.limit = SIZE_MAX;
        const auto start = Clock::now();
        const auto deleted = executor.purge(std::chrono::system_clock::now() - std::chrono::hours(12));
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        std::printf("purge of runs finished over 12 h ago: %zu runs in %.2f s (%.0f runs/s); %zu runs left\n",
                    deleted, seconds, static_cast<double>(deleted) / seconds,
                    store.list_runs(everything).size());
    }
    fs::remove_all(dir);
    return 0;
}
