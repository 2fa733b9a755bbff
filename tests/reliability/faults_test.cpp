// Storage faults: a small fan-out workflow runs (or a half-done run is
// recovered) on SqliteStore through FaultVfs, which fails the Nth read, write,
// sync, truncate or size query (SQLITE_IOERR_*, SQLITE_FULL), once or until
// cleared, for every N the session reaches. Each time: no crash and no hang;
// only StoreError reaches the caller and it names the run (and, for a failed
// commit, its steps); the store shows completed exactly the steps whose commit
// the executor acknowledged; once the fault clears, recover() finishes the run
// with a clean run's output and `PRAGMA integrity_check` is ok. Two cases on a
// failing StoreWrapper pin down what the executor does after a failed commit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <SQLiteCpp/Database.h>
#include <sqlite3.h>

#include <loom/loom.hpp>

#include "support/fault_vfs.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::test::Io;

namespace {

constexpr auto kWaitLimit = 20s;   // a run that takes longer has hung

// src -> a, b, c (in parallel) -> join -> done. Each output embeds its inputs,
// so a lost or wrong result changes the run's output.
loom::Workflow fan_out() {
    // An attempt whose result a fault kept from the store counts when the run
    // is recovered: a budget no sweep exhausts lets every run complete.
    loom::RetryPolicy budget;
    budget.max_attempts = 64;
    budget.initial_backoff = std::chrono::milliseconds(1);
    return loom::WorkflowBuilder("faults", 1)
        .default_retry(budget)
        .step("src", "work").input({{"seed", "${input.seed}"}})
        .step("a", "work").after("src")
        .step("b", "work").after("src")
        .step("c", "work").after("src")
        .step("join", "work").after({"a", "b", "c"})
        .step("done", "work").after("join")
        .build();
}
constexpr std::size_t kStepCount = 6;
const Json kInput = {{"seed", 7}};

/// Which steps the handlers ran, per session (one executor each).
struct Ledger {
    std::mutex mutex;
    int session = 1;                                       // guarded by mutex
    std::vector<std::pair<int, std::string>> entries;     // guarded by mutex

    void add(const std::string& step) {
        std::lock_guard lock(mutex);
        entries.emplace_back(session, step);
    }
    void next_session() {
        std::lock_guard lock(mutex);
        ++session;
    }
    std::multiset<std::string> in(int s) {
        std::lock_guard lock(mutex);
        std::multiset<std::string> out;
        for (const auto& [at, step] : entries)
            if (at == s) out.insert(step);
        return out;
    }
};

/// The steps whose completion the executor acknowledged: observers hear of a
/// step only once its commit succeeded.
struct Acknowledged : loom::Observer {
    std::mutex mutex;
    std::set<std::string> steps;   // guarded by mutex
    void on_step_finished(const loom::StepEvent& e) override {
        std::lock_guard lock(mutex);
        if (e.status == loom::StepStatus::completed) steps.insert(e.step_id);
    }
    std::set<std::string> get() {
        std::lock_guard lock(mutex);
        return steps;
    }
};

void add_handlers(loom::HandlerRegistry& handlers, Ledger& ledger) {
    handlers.add("work", [&ledger](loom::StepContext& ctx) -> Json {
        ledger.add(ctx.step_id());
        return Json{{"step", ctx.step_id()}, {"from", ctx.input()}};
    });
}

/// Aborts the process, naming the trial, if one takes longer than its limit:
/// a hang fails the test instead of stalling it.
class Watchdog {
public:
    Watchdog() : thread_([this] { watch(); }) {}
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void arm(std::string what, std::chrono::seconds limit) {
        std::lock_guard lock(mutex_);
        what_ = std::move(what);
        deadline_ = std::chrono::steady_clock::now() + limit;
        armed_ = true;
    }
    void disarm() {
        std::lock_guard lock(mutex_);
        armed_ = false;
    }

private:
    void watch() {
        std::unique_lock lock(mutex_);
        while (!stop_) {
            cv_.wait_for(lock, 100ms);
            if (armed_ && std::chrono::steady_clock::now() > deadline_) {
                std::cerr << "test_faults: hung in " << what_ << std::endl;
                std::abort();
            }
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;              // guarded by mutex_
    bool armed_ = false;             // guarded by mutex_
    std::string what_;               // guarded by mutex_
    std::chrono::steady_clock::time_point deadline_;   // guarded by mutex_
    std::thread thread_;
};

struct Fault {
    Io kind;
    int code;
    std::uint64_t nth;
    bool persist;   // fails every operation of the kind from the nth on
    bool close;     // the first store is closed after the run (always, if persist)

    std::string describe() const {
        std::ostringstream out;
        out << (persist ? "persisting" : "single") << " fault (SQLite code " << code << ") from "
            << to_string(kind) << " #" << nth << (close ? ", store closed" : ", store kept");
        return out.str();
    }
};

/// Calls f; a StoreError is recorded in `errors` as "<verb>: <message>", any
/// other exception fails the test.
template <class F>
bool guarded(const char* verb, std::vector<std::string>& errors, F&& f) {
    try {
        f();
        return true;
    } catch (const loom::StoreError& e) {
        errors.push_back(std::string(verb) + ": " + e.what());
    } catch (const std::exception& e) {
        FAIL(verb << " threw something other than StoreError: " << e.what());
    } catch (...) {
        FAIL(verb << " threw something other than an exception");
    }
    return false;
}

std::set<std::string> completed_steps(const std::optional<loom::RunInfo>& run) {
    std::set<std::string> out;
    if (run)
        for (const auto& s : run->steps)
            if (s.status == loom::StepStatus::completed) out.insert(s.step_id);
    return out;
}

/// A one-shot signal between threads.
struct Signal {
    std::mutex mutex;
    std::condition_variable cv;
    bool set = false;   // guarded by mutex
    void raise() {
        std::lock_guard lock(mutex);
        set = true;
        cv.notify_all();
    }
    /// Bounded, so that a test whose timing went wrong fails instead of hanging.
    bool wait() {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, 10s, [this] { return set; });
    }
};

/// Where the fault is armed: while a fresh run starts and runs, or while
/// recover() resumes a run left half done (src, a, b, c completed).
enum class Phase { run, recover };

const char* to_string(Phase p) { return p == Phase::run ? "run" : "recover"; }

using Counts = std::array<std::uint64_t, loom::test::kIoKinds>;

/// The fixture: template databases (copied for each trial, so that a trial
/// pays for no migrations), the VFS, and a clean run's output and I/O counts.
class FaultSweep {
public:
    FaultSweep() {
        fresh_db_ = dir_.file("fresh.db");
        {
            loom::SqliteStore store(fresh_db_);
            loom::HandlerRegistry handlers;
            loom::Executor executor(store, handlers, {1});
            executor.add_workflow(fan_out());
        }
        half_db_ = dir_.file("half.db");
        std::filesystem::copy_file(fresh_db_, half_db_);
        make_half_done();
    }

    loom::test::FaultVfs& vfs() { return vfs_; }

    /// I/O of a clean session (start() and wait(), or recover() and wait()) to
    /// the executor's end or, with `through_close`, to the store's close; the
    /// most seen over a few sessions, as group commit varies the number of
    /// transactions.
    Counts clean_counts(Phase phase, bool through_close) {
        Counts most{};
        for (int i = 0; i < 3; ++i) {
            loom::test::TempDir dir;
            const auto db = copy(phase, dir);
            Ledger ledger;
            loom::HandlerRegistry handlers;
            add_handlers(handlers, ledger);
            auto store = std::make_unique<loom::SqliteStore>(db, options());
            {
                loom::Executor executor(*store, handlers, {2});
                executor.add_workflow(fan_out());
                vfs_.reset_counts();
                loom::RunId id = half_run_;
                if (phase == Phase::run) id = executor.start("faults", kInput);
                else REQUIRE(executor.recover() == std::vector<loom::RunId>{half_run_});
                auto run = executor.wait_for(id, kWaitLimit);
                REQUIRE(run);
                REQUIRE(run->status == loom::RunStatus::completed);
                if (expected_.is_null()) expected_ = run->output;
                REQUIRE(run->output == expected_);
            }
            if (through_close) store.reset();
            for (std::size_t k = 0; k < most.size(); ++k)
                most[k] = std::max(most[k], vfs_.count(static_cast<Io>(k)));
        }
        return most;
    }

    /// Runs a session with `fault` armed, checks what reached the caller and
    /// what the store shows, then clears the fault and recovers.
    void trial(Phase phase, const Fault& fault) {
        const std::string what = std::string(to_string(phase)) + ": " + fault.describe();
        INFO(what);
        watchdog_.arm(what, 60s);
        ++trials_;
        loom::test::TempDir dir;
        const auto db = copy(phase, dir);
        const std::set<std::string> before =
            phase == Phase::run ? std::set<std::string>{} : half_done_;
        Ledger ledger;
        Acknowledged acknowledged;
        loom::HandlerRegistry handlers;
        add_handlers(handlers, ledger);

        // Session 1, with the fault armed.
        auto store = std::make_unique<loom::SqliteStore>(db, options());
        std::optional<loom::RunId> id;
        std::vector<std::string> errors;
        {
            loom::Executor executor(*store, handlers, {2, &acknowledged});
            executor.add_workflow(fan_out());   // cached: start() reads no definition
            vfs_.fail(fault.kind, fault.nth, fault.code, fault.persist);
            if (phase == Phase::run) {
                guarded("start", errors, [&] { id = executor.start("faults", kInput); });
            } else {
                // (What may throw is called outside CHECK, which would catch it.)
                guarded("recover", errors, [&] {
                    auto resumed = executor.recover();
                    CHECK(resumed == std::vector<loom::RunId>{half_run_});
                    id = half_run_;
                });
            }
            if (id) {
                guarded("wait", errors, [&] {
                    auto run = executor.wait_for(*id, kWaitLimit);
                    REQUIRE(run.has_value());   // else it hung
                    CHECK(run->status == loom::RunStatus::completed);
                    CHECK(run->output == expected_);
                });
                guarded("get_run", errors, [&] {
                    auto run = executor.get_run(*id);
                    CHECK(run.id == *id);
                });
            }
        }   // ~Executor commits what in-flight handlers left, if the store lets it
        // The process gives up, with a persisting fault while the disk still fails.
        if (fault.close || fault.persist) store.reset();
        const bool fired = vfs_.injected_since_armed() > 0;
        vfs_.clear();
        if (fired) ++fired_trials_;
        if (!fired) CHECK(errors.empty());

        // Read what is durable through a connection of its own.
        std::optional<loom::RunInfo> stored;
        {
            loom::SqliteStore inspect(db);
            auto runs = inspect.list_runs();
            REQUIRE(runs.size() <= 1);
            if (!runs.empty()) stored = inspect.load_run(runs[0].id);
        }
        if (id) {
            REQUIRE(stored);   // start() returned: the run is durable
            CHECK(stored->id == *id);
        }
        if (stored) id = stored->id;

        static const bool verbose = std::getenv("LOOM_FAULTS_VERBOSE") != nullptr;
        for (const auto& e : errors) {
            if (verbose) std::cerr << what << " -> " << e << "\n";
            INFO(e);
            CHECK(e.find("[loom.store.io]") != std::string::npos);
            // Names the run, by id once one exists; recover() cannot when it
            // fails to list what it claims from (definitions, owners, runs)
            // or to claim them: that names the executor.
            if (e.find(": listing ") == std::string::npos && e.find("for executor loom/") == std::string::npos)
                CHECK(e.find(id ? "run " + *id : "run ") != std::string::npos);
            // A failed commit in wait() carries step transitions: it names them.
            if (e.rfind("wait:", 0) == 0 && e.find("loading run") == std::string::npos)
                CHECK(e.find("step") != std::string::npos);
        }

        // Durable is exactly what was there before and what was acknowledged.
        // The exception: a sync that failed after a commit's WAL frames were
        // all written leaves that commit undecided. The file is closed while
        // still faulted, and reopening it replays those frames: the commit may
        // count, as it would after a power cut.
        const auto done = completed_steps(stored);
        auto durable = acknowledged.get();
        durable.insert(before.begin(), before.end());
        const auto ran = ledger.in(1);
        for (const auto& s : durable) CHECK(done.count(s) == 1);
        for (const auto& s : done) CHECK(ran.count(s) + before.count(s) == 1);
        const bool undecided = fault.persist && fault.kind == Io::sync;
        if (!undecided) CHECK(done == durable);
        else if (done != durable) ++undecided_commits_;
        for (const auto& s : ran) CHECK(ran.count(s) == 1);   // no retries: each ran once
        if (stored) {
            CHECK(stored->status != loom::RunStatus::failed);
            CHECK(stored->status != loom::RunStatus::cancelled);
            if (stored->status == loom::RunStatus::completed) CHECK(done.size() == kStepCount);
        }

        // Session 2: the fault has cleared. The same store carries on, or the
        // file is reopened.
        ledger.next_session();
        if (!store) store = std::make_unique<loom::SqliteStore>(db, options());
        {
            loom::Executor executor(*store, handlers, {2});
            executor.add_workflow(fan_out());
            auto resumed = executor.recover();
            if (!stored) {
                CHECK(resumed.empty());
                id = executor.start("faults", kInput);
            } else if (stored->status == loom::RunStatus::running) {
                CHECK(resumed == std::vector<loom::RunId>{*id});
            } else {
                CHECK(resumed.empty());
            }
            auto run = executor.wait_for(*id, kWaitLimit);
            REQUIRE(run.has_value());
            CHECK(run->status == loom::RunStatus::completed);
            CHECK(run->output == expected_);
        }
        store.reset();
        const auto reran = ledger.in(2);
        for (const auto& s : reran) {
            CHECK(reran.count(s) == 1);
            CHECK(done.count(s) == 0);   // a step completed in the store never runs again
        }

        // The file, reopened: whole, and the run finished.
        {
            SQLite::Database check(db);
            CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
        }
        loom::SqliteStore reopened(db);
        auto final_run = reopened.load_run(*id);
        REQUIRE(final_run);
        CHECK(final_run->status == loom::RunStatus::completed);
        CHECK(final_run->output == expected_);
        CHECK(completed_steps(final_run).size() == kStepCount);
        watchdog_.disarm();
    }

    int trials() const { return trials_; }
    int fired_trials() const { return fired_trials_; }
    int undecided_commits() const { return undecided_commits_; }

private:
    loom::SqliteOptions options() const {
        loom::SqliteOptions o;
        o.vfs = vfs_.name();
        return o;
    }

    std::string copy(Phase phase, const loom::test::TempDir& dir) const {
        const auto db = dir.file("runs.db");
        std::filesystem::copy_file(phase == Phase::run ? fresh_db_ : half_db_, db);
        return db;
    }

    // Leaves a run in half_db_ with src, a, b and c completed and join not
    // started: a returns only once its executor is stopping, so that nothing
    // after it is dispatched, but its result is committed.
    void make_half_done() {
        Signal a_started, a_release;
        loom::HandlerRegistry handlers;
        handlers.add("work", [&](loom::StepContext& ctx) -> Json {
            if (ctx.step_id() == "a") {
                a_started.raise();
                a_release.wait();
            }
            return Json{{"step", ctx.step_id()}, {"from", ctx.input()}};
        });
        loom::SqliteStore store(half_db_);
        std::thread releaser;
        {
            loom::Executor executor(store, handlers, {2});
            half_run_ = executor.start("faults", kInput);
            REQUIRE(a_started.wait());
            // b and c run on the other thread meanwhile.
            for (int i = 0; i < 1000 && completed_steps(store.load_run(half_run_)).size() < 3; ++i)
                std::this_thread::sleep_for(10ms);
            releaser = std::thread([&] {
                std::this_thread::sleep_for(200ms);
                a_release.raise();
            });
        }
        releaser.join();
        auto run = store.load_run(half_run_);
        REQUIRE(run);
        REQUIRE(run->status == loom::RunStatus::running);
        half_done_ = completed_steps(run);
        REQUIRE(half_done_ == std::set<std::string>{"src", "a", "b", "c"});
    }

    loom::test::TempDir dir_;
    std::string fresh_db_;   // the definition only
    std::string half_db_;    // and the half-done run
    loom::RunId half_run_;
    std::set<std::string> half_done_;
    loom::test::FaultVfs vfs_;
    Json expected_;
    Watchdog watchdog_;
    int trials_ = 0;
    int fired_trials_ = 0;
    int undecided_commits_ = 0;
};

struct Kind {
    Io io;
    std::vector<int> codes;
};

const std::vector<Kind> kKinds = {
    {Io::read, {SQLITE_IOERR_READ}},
    {Io::write, {SQLITE_IOERR_WRITE, SQLITE_FULL}},
    {Io::sync, {SQLITE_IOERR_FSYNC}},
    {Io::truncate, {SQLITE_IOERR_TRUNCATE}},
    {Io::file_size, {SQLITE_IOERR_FSTAT}},
};

/// Fails, once, the commit that completes `step` (or, given `item`, that
/// element of the for_each step) after calling before_failing, and forwards
/// every other commit.
struct FailingCommit : loom::StoreWrapper {
    FailingCommit(loom::Store& target, std::string step, std::optional<std::uint32_t> item = std::nullopt)
        : StoreWrapper(target), step_(std::move(step)), item_(item) {}
    std::function<void()> before_failing;   // set before the run starts
    std::atomic<bool> armed{true};

    void commit(const loom::Batch& batch) override {
        const bool completes =
            item_ ? std::any_of(batch.items.begin(), batch.items.end(), [&](const auto& w) {
                return w.step_id == step_ && w.item.index == *item_ && w.item.status == loom::StepStatus::completed;
            })
                  : std::any_of(batch.steps.begin(), batch.steps.end(), [&](const auto& w) {
                        return w.step_id == step_ && w.status == loom::StepStatus::completed;
                    });
        if (completes && armed.exchange(false)) {
            if (before_failing) before_failing();
            throw loom::StoreError(loom::error_id::store_io, "injected: the commit completing " + step_ + " failed");
        }
        StoreWrapper::commit(batch);
    }

private:
    std::string step_;
    std::optional<std::uint32_t> item_;
};

/// src -> x and `other`, both sinks; the test adds other's handler, which must
/// raise `other_started`. x returns 1 once other has started on its thread, so
/// that this thread cannot be the one committing x.
loom::Workflow x_and_other(const std::string& other, loom::HandlerRegistry& handlers,
                           Signal& other_started) {
    handlers.add("src", [](loom::StepContext&) -> Json { return 0; });
    handlers.add("x", [&other_started](loom::StepContext&) -> Json {
        other_started.wait();
        return 1;
    });
    // A start stored before the failed commit counts when recovered: each
    // step has attempts to spare.
    loom::RetryPolicy spare;
    spare.max_attempts = 3;
    return loom::WorkflowBuilder("x_and_" + other, 1)
        .default_retry(spare)
        .step("src", "src")
        .step("x", "x").after("src")
        .step(other, other).after("src")
        .build();
}

}  // namespace

TEST_CASE("a run's writes queued behind its failed commit are dropped, not committed",
          "[reliability][faults][executor]") {
    // x and y are both sinks. y finishes while x's commit is in progress, so
    // y's completion and the run's final write (whose output holds x's result)
    // queue behind it. When x's commit fails, committing them would show the
    // run completed while x never was.
    loom::MemoryStore memory;
    FailingCommit store(memory, "x");
    Signal y_started, x_committing, y_returning;
    store.before_failing = [&] {
        x_committing.raise();
        y_returning.wait();
        std::this_thread::sleep_for(200ms);   // y's result is queued by then
    };
    std::atomic<bool> first{true};
    loom::HandlerRegistry handlers;
    auto wf = x_and_other("y", handlers, y_started);
    handlers.add("y", [&](loom::StepContext&) -> Json {
        if (first.exchange(false)) {
            y_started.raise();
            x_committing.wait();
            y_returning.raise();
        }
        return 2;
    });
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(wf);
    auto id = executor.start(wf.name());
    REQUIRE_THROWS_AS(executor.wait(id), loom::StoreError);

    auto stored = memory.load_run(id);
    REQUIRE(stored);
    CHECK(stored->status == loom::RunStatus::running);
    CHECK(stored->step("x")->status != loom::StepStatus::completed);

    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    auto run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"x", 1}, {"y", 2}});
}

TEST_CASE("recover resumes a run abandoned by a failed commit while its handlers still run",
          "[reliability][faults][executor]") {
    // slow is still running when x's commit fails; the host sees StoreError,
    // the fault clears, and recover() must resume the run at once rather than
    // skip it as live until slow returns.
    loom::MemoryStore memory;
    FailingCommit store(memory, "x");
    Signal slow_started, slow_release;
    std::atomic<int> slow_runs{0};
    loom::HandlerRegistry handlers;
    auto wf = x_and_other("slow", handlers, slow_started);
    handlers.add("slow", [&](loom::StepContext&) -> Json {
        if (slow_runs++ == 0) {
            slow_started.raise();
            slow_release.wait();
        }
        return 2;
    });
    loom::Executor executor(store, handlers, {3});
    struct Release {   // declared after the executor: lets slow return before ~Executor joins it
        Signal& signal;
        ~Release() { signal.raise(); }
    } release{slow_release};
    executor.add_workflow(wf);
    auto id = executor.start(wf.name());
    REQUIRE_THROWS_AS(executor.wait(id), loom::StoreError);

    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    auto run = executor.wait_for(id, 10s);
    slow_release.raise();   // the abandoned attempt returns; its result is dropped
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == Json{{"x", 1}, {"slow", 2}});
}

TEST_CASE("every I/O of a run or a recovery can fail: errors are typed, nothing acknowledged is lost, "
          "recovery finishes",
          "[reliability][faults][sqlite]") {
    FaultSweep sweep;
    const auto before = sweep.vfs().injected();
    for (Phase phase : {Phase::run, Phase::recover}) {
        const auto kept = sweep.clean_counts(phase, false);
        const auto closed = sweep.clean_counts(phase, true);
        std::ostringstream counts;
        for (const auto& k : kKinds) {
            const auto i = static_cast<std::size_t>(k.io);
            counts << " " << to_string(k.io) << " " << kept[i] << "/" << closed[i];
        }
        std::cerr << "test_faults: I/O of a clean " << to_string(phase)
                  << " (to the executor's end / to the store's close):" << counts.str() << "\n";
        for (const auto& k : kKinds) {
            const auto i = static_cast<std::size_t>(k.io);
            // Every operation once with a single fault (those of closing the
            // store with the store closed, the others with it kept open), and
            // every one with a persisting fault. Counts are small (< 100), so N
            // steps by one.
            for (int code : k.codes) {
                for (std::uint64_t n = 1; n <= kept[i]; ++n)
                    sweep.trial(phase, {k.io, code, n, false, false});
                for (std::uint64_t n = kept[i] + 1; n <= closed[i]; ++n)
                    sweep.trial(phase, {k.io, code, n, false, true});
                for (std::uint64_t n = 1; n <= closed[i]; ++n)
                    sweep.trial(phase, {k.io, code, n, true, true});
            }
        }
    }
    std::cerr << "test_faults: " << sweep.trials() << " trials, " << sweep.fired_trials()
              << " with a fault, " << sweep.vfs().injected() - before << " faults injected; "
              << sweep.undecided_commits() << " commits whose sync failed were found on reopening\n";
}

TEST_CASE("wait on a run abandoned by a failed commit reports the failure, also when its last handler "
          "returns during the abandon",
          "[reliability][faults][executor]") {
    // The failed commit sets ctx.cancelled(); slow returns at once and takes
    // the run off the live ones itself, racing the leader that abandons it.
    // A host polling the run in that instant must see the StoreError, never
    // "not running in this executor". Many rounds: the window is microseconds.
    for (int round = 0; round < 200; ++round) {
        loom::MemoryStore memory;
        FailingCommit store(memory, "x");
        Signal slow_started;
        loom::HandlerRegistry handlers;
        auto wf = x_and_other("slow", handlers, slow_started);
        std::atomic<bool> first{true};
        handlers.add("slow", [&](loom::StepContext& ctx) -> Json {
            if (first.exchange(false)) {
                slow_started.raise();
                while (!ctx.cancelled()) std::this_thread::yield();
            }
            return 2;
        });
        loom::Executor executor(store, handlers, {3});
        executor.add_workflow(wf);
        auto id = executor.start(wf.name());
        const auto limit = std::chrono::steady_clock::now() + kWaitLimit;
        bool failed = false;
        while (!failed) {
            REQUIRE(std::chrono::steady_clock::now() < limit);
            try {
                (void)executor.wait_for(id, 0ms);
            } catch (const loom::StoreError&) {
                failed = true;
            }   // any other exception fails the test
        }
        CHECK(executor.recover() == std::vector<loom::RunId>{id});
        CHECK(executor.wait(id).status == loom::RunStatus::completed);
    }
}

TEST_CASE("a failed commit in the middle of a for_each: no committed element runs again after recover",
          "[reliability][faults][executor][for_each]") {
    // Element 2's completion fails to commit, with the next element made
    // ready in the same batch (max_parallel 2): the run is abandoned, its
    // queued elements dropped. recover() finishes the step with every output
    // in order; an element whose completion was committed runs once.
    loom::MemoryStore memory;
    FailingCommit store(memory, "each", 2);
    std::mutex mutex;
    std::map<std::uint32_t, int> runs;   // element -> handler calls
    loom::HandlerRegistry handlers;
    handlers.add("square", [&](loom::StepContext& ctx) -> Json {
        const auto n = ctx.input().get<int>();
        std::lock_guard lock(mutex);
        ++runs[*ctx.item_index()];
        return n * n;
    });
    loom::Executor executor(store, handlers, {2});
    // An element whose start was stored before the failed commit counts that
    // attempt when recovered: it has another.
    loom::RetryPolicy again;
    again.max_attempts = 2;
    executor.add_workflow(loom::WorkflowBuilder("squares", 1)
                              .step("each", "square").for_each("${input}").max_parallel(2).input("${item}")
                              .retry(again)
                              .build());
    const Json input = {1, 2, 3, 4, 5, 6};
    const auto id = executor.start("squares", input);
    REQUIRE_THROWS_AS(executor.wait(id), loom::StoreError);
    const auto stored = memory.load_run(id);
    REQUIRE(stored);
    CHECK(stored->status == loom::RunStatus::running);
    std::set<std::uint32_t> committed;
    for (const auto& item : stored->step("each")->items)
        if (item.status == loom::StepStatus::completed) committed.insert(item.index);
    CHECK(committed.count(2) == 0);

    CHECK(executor.recover() == std::vector<loom::RunId>{id});
    const auto run = executor.wait_for(id, kWaitLimit);
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->step("each")->output == Json{1, 4, 9, 16, 25, 36});
    std::lock_guard lock(mutex);
    for (std::uint32_t i = 0; i < input.size(); ++i) {
        INFO("element " << i);
        if (committed.count(i)) CHECK(runs[i] == 1);
        CHECK(runs[i] >= 1);
        CHECK(runs[i] <= 2);
    }
    CHECK(runs[2] == 2);   // its first result was never durable
}
