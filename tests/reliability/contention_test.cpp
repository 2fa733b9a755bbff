// Contention on one SQLite file: host threads starting and waiting for runs,
// readers listing and reading them, a second store on the file, and a second
// process with its own executor. Nothing any caller sees may be SQLITE_BUSY or
// any other error, every step completes exactly once, and each (run, step,
// attempt) is claimed once: by the handlers' ledger, the history and the rows.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <loom/loom.hpp>

#include "contention_workflow.hpp"
#include "support/child_process.hpp"
#include "support/crash_child.hpp"
#include "support/temp_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;

/// LOOM_CONTENTION_SCALE=N multiplies the runs (a long mode); 1 by default.
int scale() {
    const char* n = std::getenv("LOOM_CONTENTION_SCALE");
    return n && std::atoi(n) > 0 ? std::atoi(n) : 1;
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Every exception that reached a caller, from any thread.
class Errors {
public:
    template <class F>
    void guard(F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            add(e.what());
        }
    }
    void add(const std::string& what) {
        std::lock_guard lock(mutex_);
        messages_.push_back(what);
    }
    std::vector<std::string> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }

private:
    std::mutex mutex_;
    std::vector<std::string> messages_;   // guarded by mutex_
};

/// The handler side: one line per handler call, as the child writes them.
class Ledger {
public:
    void add(std::string line) {
        std::lock_guard lock(mutex_);
        lines_.push_back(std::move(line));
    }
    std::vector<std::string> lines() {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    std::mutex mutex_;
    std::vector<std::string> lines_;   // guarded by mutex_
};

void register_work(loom::HandlerRegistry& handlers, Ledger& ledger) {
    handlers.add("work", [&ledger](loom::StepContext& ctx) -> loom::Json {
        ledger.add(loom::test::ledger_line(ctx, ::getpid()));
        // Jitter, so that steps of many runs are in flight and finish in any order.
        thread_local std::mt19937 rng{std::random_device{}()};
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
        return loom::test::contention_output(ctx.step_id(), ctx.input());
    });
}

/// Starts `runs` runs from `host_threads` threads, each waiting for its run.
void start_and_wait(loom::Executor& executor, const std::string& origin, int runs,
                    int host_threads, Errors& errors) {
    std::vector<std::thread> hosts;
    for (int t = 0; t < host_threads; ++t) {
        hosts.emplace_back([&, t] {
            for (int i = t; i < runs; i += host_threads) {
                errors.guard([&] {
                    auto id = executor.start("contention", {{"origin", origin}, {"i", i}});
                    auto run = executor.wait(id);
                    if (run.status != loom::RunStatus::completed) {
                        errors.add("run " + id + " ended " + std::string(to_string(run.status)) +
                                   ": " + run.error);
                    }
                });
            }
        });
    }
    for (auto& h : hosts) h.join();
}

// The same reads through an executor or straight from a store.
loom::RunInfo get(loom::Executor& executor, const loom::RunId& id) { return executor.get_run(id); }
std::optional<loom::RunInfo> get(loom::Store& store, const loom::RunId& id) {
    return store.load_run(id);
}
std::vector<loom::RunEvent> history(loom::Executor& executor, const loom::RunId& id) {
    return executor.history(id);
}
std::vector<loom::RunEvent> history(loom::Store& store, const loom::RunId& id) {
    return store.load_events(id);
}

/// Reads in a loop until `done`: a listing, then one listed run and its history.
template <class Source>
std::thread reader(Source& source, const std::atomic<bool>& done, std::atomic<long>& reads,
                   Errors& errors) {
    return std::thread([&source, &done, &reads, &errors] {
        std::mt19937 rng{42};
        loom::RunFilter filter;
        filter.limit = 20;
        while (!done) {
            errors.guard([&] {
                auto listed = source.list_runs(filter);
                ++reads;
                if (listed.empty()) return;
                const loom::RunId id = listed[rng() % listed.size()].id;
                (void)get(source, id);
                (void)history(source, id);
                reads += 2;
            });
        }
    });
}

/// What every run must end as: the output of an uncontended run on MemoryStore.
loom::Json reference_output(const loom::Json& input) {
    static std::mutex mutex;
    static std::map<std::string, loom::Json> cache;
    std::lock_guard lock(mutex);
    auto& out = cache[input.dump()];
    if (out.is_null()) {
        loom::MemoryStore store;
        loom::HandlerRegistry handlers;
        handlers.add("work", [](loom::StepContext& ctx) -> loom::Json {
            return loom::test::contention_output(ctx.step_id(), ctx.input());
        });
        loom::Executor executor(store, handlers, {1});
        executor.add_workflow(loom::test::contention_workflow());
        out = executor.wait(executor.start("contention", input)).output;
    }
    return out;
}

/// Checks the file once everyone is done: `expected` runs per origin, each run
/// completed with the reference output; every step completed exactly once in
/// the rows, the history and the ledger; every ledger line of a run comes from
/// the process that started it (`pids`, by origin). Returns the completions.
std::size_t check_file(const std::string& db, const std::map<std::string, int>& expected,
                       const std::vector<std::string>& ledger,
                       const std::map<std::string, long>& pids) {
    constexpr int kSteps = loom::test::contention_step_count();
    loom::SqliteStore store(db);
    loom::RunFilter all;
    all.limit = 1'000'000;
    const auto runs = store.list_runs(all);

    std::map<std::string, int> by_origin;
    std::map<loom::RunId, std::string> origin_of;
    std::size_t completions = 0;
    for (const auto& listed : runs) {
        INFO("run " << listed.id << " input " << listed.input.dump());
        const std::string origin = listed.input.at("origin");
        ++by_origin[origin];
        origin_of[listed.id] = origin;
        auto run = store.load_run(listed.id);
        REQUIRE(run);
        CHECK(run->status == loom::RunStatus::completed);
        CHECK(run->error.empty());
        CHECK(run->output == reference_output(run->input));
        REQUIRE(run->steps.size() == static_cast<std::size_t>(kSteps));
        for (const auto& step : run->steps) {
            CHECK(step.status == loom::StepStatus::completed);
            CHECK(step.attempts == 1);
            CHECK(step.error.empty());
        }
        std::map<std::string, int> kinds;
        std::map<std::pair<std::string, int>, int> starts;
        for (const auto& event : store.load_events(listed.id)) {
            ++kinds[event.kind];
            if (event.kind == loom::event::step_started) ++starts[{event.step_id, event.attempt}];
            if (event.kind == loom::event::step_completed) ++completions;
        }
        CHECK(kinds == std::map<std::string, int>{{loom::event::run_started, 1},
                                                  {loom::event::step_started, kSteps},
                                                  {loom::event::step_completed, kSteps},
                                                  {loom::event::run_completed, 1}});
        CHECK(starts.size() == static_cast<std::size_t>(kSteps));
        for (const auto& [claim, count] : starts) {
            INFO("step " << claim.first << " attempt " << claim.second);
            CHECK(count == 1);
        }
    }
    CHECK(by_origin == expected);

    // The same, counted over the whole file by SQLite itself.
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    const auto total = static_cast<std::int64_t>(runs.size()) * kSteps;
    CHECK(file.execAndGet("SELECT count(*) FROM step_runs WHERE status = 'completed'").getInt64() ==
          total);
    CHECK(file.execAndGet("SELECT count(*) FROM step_runs").getInt64() == total);
    CHECK(file.execAndGet("SELECT count(*) FROM run_events WHERE kind = 'step.completed'")
              .getInt64() == total);
    CHECK(file.execAndGet("SELECT count(*) FROM (SELECT 1 FROM run_events "
                          "WHERE kind = 'step.started' GROUP BY run_id, step_id, attempt "
                          "HAVING count(*) > 1)").getInt() == 0);
    CHECK(file.execAndGet("PRAGMA integrity_check").getString() == "ok");

    // The handlers' side: each (run, step, attempt) ran once, in the process
    // that started the run.
    std::map<std::tuple<std::string, std::string, int>, int> calls;
    for (const auto& line : ledger) {
        std::istringstream in(line);
        std::string run, step;
        int attempt = 0;
        long pid = 0;
        REQUIRE(in >> run >> step >> attempt >> pid);
        INFO("ledger line " << line);
        REQUIRE(origin_of.count(run) == 1);
        CHECK(pid == pids.at(origin_of[run]));
        CHECK(attempt == 1);
        ++calls[{run, step, attempt}];
    }
    CHECK(ledger.size() == static_cast<std::size_t>(total));
    CHECK(calls.size() == static_cast<std::size_t>(total));
    for (const auto& [call, count] : calls) {
        INFO("run " << std::get<0>(call) << " step " << std::get<1>(call) << " ran " << count
                    << " times");
        CHECK(count == 1);
    }
    CHECK(completions == static_cast<std::size_t>(total));
    return completions;
}

void require_no_errors(Errors& errors) {
    auto messages = errors.messages();
    for (const auto& m : messages) UNSCOPED_INFO(m);
    REQUIRE(messages.empty());
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST_CASE("host threads and readers on one SQLite file: every step completes once, no error",
          "[reliability][contention][sqlite]") {
    const unsigned threads = GENERATE(1u, 2u, 4u);
    constexpr int kHostThreads = 4, kRuns = 120;
    loom::test::TempDir dir;
    const std::string db = dir.file("runs.db");
    Ledger ledger;
    Errors errors;
    const auto t0 = Clock::now();
    {
        loom::SqliteStore sqlite(db);
        loom::test::TimedStore store(sqlite);
        loom::SqliteStore other(db);   // a second store: its own connections, as another process
        loom::HandlerRegistry handlers;
        register_work(handlers, ledger);
        loom::Executor executor(store, handlers, {threads});
        executor.add_workflow(loom::test::contention_workflow());

        std::atomic<bool> done{false};
        std::atomic<long> reads{0};
        auto via_executor = reader(executor, done, reads, errors);
        auto via_other_store = reader(other, done, reads, errors);
        start_and_wait(executor, "host", kRuns, kHostThreads, errors);
        done = true;
        via_executor.join();
        via_other_store.join();
        CHECK(reads > 0);
        std::cout << "contention: 1 process, " << threads << " executor threads, " << kHostThreads
                  << " host threads, 2 readers: " << kRuns << " runs, " << reads << " reads, "
                  << "longest commit " << store.longest_commit_ms() << " ms, longest read "
                  << store.longest_read_ms() << " ms, " << seconds_since(t0) << " s\n";
    }
    require_no_errors(errors);
    const auto completions =
        check_file(db, {{"host", kRuns}}, ledger.lines(), {{"host", static_cast<long>(::getpid())}});
    CHECK(completions == kRuns * static_cast<std::size_t>(loom::test::contention_step_count()));
}

TEST_CASE("two processes running workflows on one SQLite file: every step completes once, no error",
          "[reliability][contention][sqlite]") {
    const int kParentRuns = 200 * scale(), kChildRuns = 200 * scale();
    constexpr int kParentHosts = 4, kChildHosts = 2;
    loom::test::TempDir dir;
    const std::string db = dir.file("runs.db"), child_ledger = dir.file("child.ledger");
    Ledger ledger;
    Errors errors;
    long child_pid = 0;
    std::string summary;
    const auto t0 = Clock::now();
    {
        loom::SqliteStore sqlite(db);   // creates the file; the child opens it as it is
        loom::test::TimedStore store(sqlite);
        loom::test::ChildProcess child(
            {LOOM_CONTENTION_CHILD, db, child_ledger, std::to_string(kChildRuns), std::to_string(kChildHosts)});
        child_pid = child.pid();
        REQUIRE(child.line() == "ready");

        loom::HandlerRegistry handlers;
        register_work(handlers, ledger);
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(loom::test::contention_workflow());
        std::atomic<bool> done{false};
        std::atomic<long> reads{0};
        auto via_executor = reader(executor, done, reads, errors);
        start_and_wait(executor, "parent", kParentRuns, kParentHosts, errors);
        done = true;
        via_executor.join();

        summary = child.line();
        const int code = child.finish();
        INFO("child said: " << summary);
        CHECK(code == 0);
        CHECK(reads > 0);
        std::cout << "contention: 2 processes; parent: " << kParentHosts << " host threads, "
                  << kParentRuns << " runs, " << reads << " reads, longest commit "
                  << store.longest_commit_ms() << " ms, longest read " << store.longest_read_ms()
                  << " ms; child: " << kChildHosts << " host threads, " << summary << "; "
                  << seconds_since(t0) << " s\n";
    }
    require_no_errors(errors);
    std::map<std::string, double> child_said;   // "runs R reads N errors E longest_commit_ms T"
    std::istringstream words(summary);
    for (std::string key; words >> key;) words >> child_said[key];
    CHECK(child_said["runs"] == kChildRuns);
    CHECK(child_said["reads"] > 0);
    CHECK(child_said.count("errors") == 1);
    CHECK(child_said["errors"] == 0);

    // The two processes really ran at the same time: the spans from the first
    // run each started to the last one each finished overlap, and in creation
    // order their runs interleave.
    {
        loom::SqliteStore store(db);
        loom::RunFilter all;
        all.limit = 1'000'000;
        std::map<std::string, std::pair<loom::TimePoint, loom::TimePoint>> span;
        std::vector<std::string> origins;   // newest run first
        for (const auto& run : store.list_runs(all)) {
            const std::string origin = run.input.at("origin");
            origins.push_back(origin);
            auto it = span.emplace(origin, std::make_pair(run.created_at, *run.finished_at)).first;
            it->second.first = std::min(it->second.first, run.created_at);
            it->second.second = std::max(it->second.second, *run.finished_at);
        }
        REQUIRE(span.size() == 2);
        const auto& [p0, p1] = span["parent"];
        const auto& [c0, c1] = span["child"];
        const auto overlap = std::min(p1, c1) - std::max(p0, c0);
        int switches = 0;
        for (std::size_t i = 1; i < origins.size(); ++i) switches += origins[i] != origins[i - 1];
        std::cout << "contention: the two processes' runs overlap for "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(overlap).count()
                  << " ms; in creation order their origins alternate " << switches << " times\n";
        // Not "most of the span": how much overlaps depends on how fast the child
        // starts, and under ThreadSanitizer on a busy machine it lags by a second.
        CHECK(overlap.count() > 0);
        CHECK(switches >= 2);
    }

    auto lines = ledger.lines();
    for (auto& line : read_lines(child_ledger)) lines.push_back(line);
    const auto completions = check_file(db, {{"parent", kParentRuns}, {"child", kChildRuns}}, lines,
                                        {{"parent", static_cast<long>(::getpid())},
                                         {"child", child_pid}});
    CHECK(completions ==
          (kParentRuns + kChildRuns) * static_cast<std::size_t>(loom::test::contention_step_count()));
}

TEST_CASE("stores opening one new file at once all open it", "[reliability][contention][sqlite]") {
    // Separate stores have separate connections, so to SQLite they are as many
    // processes. One switches the new file to WAL and migrates it; SQLite
    // refuses the others' competing WAL switch with SQLITE_BUSY at once, without
    // waiting, which used to reach the caller ("opening the database").
    constexpr int kStores = 4, kRounds = 20;
    for (int round = 0; round < kRounds; ++round) {
        loom::test::TempDir dir;
        const std::string db = dir.file("runs.db");
        Errors errors;
        std::atomic<int> arrived{0};
        std::vector<std::thread> openers;
        for (int i = 0; i < kStores; ++i) {
            openers.emplace_back([&] {
                ++arrived;
                while (arrived < kStores) std::this_thread::yield();
                errors.guard([&] {
                    loom::SqliteStore store(db);
                    (void)store.list_runs();
                });
            });
        }
        for (auto& t : openers) t.join();
        INFO("round " << round);
        require_no_errors(errors);
        SQLite::Database file(db, SQLite::OPEN_READONLY);
        CHECK(file.execAndGet("SELECT count(*) FROM schema_migrations").getInt() ==
              loom::SqliteStore::latest_schema_version());
        CHECK(file.execAndGet("PRAGMA journal_mode").getString() == "wal");
    }
}

// The store, not only the executor, makes a claim unique: a second start of
// one (run, step, attempt) is refused and changes nothing (the conformance
// suite checks the same on every store).
TEST_CASE("a second start of one step attempt is refused by the SQLite file itself",
          "[reliability][contention][sqlite]") {
    loom::test::TempDir dir;
    const std::string db = dir.file("runs.db");
    Ledger ledger;
    loom::HandlerRegistry handlers;
    register_work(handlers, ledger);
    loom::RunId id;
    {
        loom::SqliteStore store(db);
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(loom::test::contention_workflow());
        id = executor.start("contention", {{"origin", "host"}, {"i", 1}});
        REQUIRE(executor.wait(id).status == loom::RunStatus::completed);
    }
    // Another process's store, claiming attempt 1 of "a" again.
    loom::SqliteStore other(db);
    const auto before = other.load_run(id);
    const auto history = other.load_events(id);
    loom::Batch claim;
    loom::StepWrite running;
    running.run_id = id;
    running.step_id = "a";
    running.status = loom::StepStatus::running;
    running.attempts = 1;
    claim.steps.push_back(running);
    loom::RunEvent started;
    started.run_id = id;
    started.step_id = "a";
    started.kind = loom::event::step_started;
    started.attempt = 1;
    claim.events.push_back(started);
    try {
        other.commit(claim);
        FAIL("a second start of attempt 1 was accepted");
    } catch (const loom::Conflict& e) {
        CHECK(e.id() == loom::error_id::store_duplicate_attempt);
        CHECK_THAT(e.what(), Catch::Contains("attempt 1 of step a of run " + id));
    }
    const auto after = other.load_run(id);
    CHECK(after->step("a")->status == loom::StepStatus::completed);
    CHECK(after->step("a")->attempts == before->step("a")->attempts);
    CHECK(other.load_events(id).size() == history.size());
    // A raw INSERT that bypasses the store is refused by the index as well.
    SQLite::Database file(db, SQLite::OPEN_READWRITE);
    CHECK_THROWS_AS(file.exec("INSERT INTO run_events (run_id, step_id, kind, attempt, at) "
                              "VALUES ('" + id + "', 'a', 'step.started', 1, 0)"),
                    SQLite::Exception);
}
