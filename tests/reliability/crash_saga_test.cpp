// Crash test, second scenario: what the first (test_crash) does not run. A
// child process runs a saga (three compensable steps, then one that fails for
// good under on_error "compensate"), a sub-workflow step whose child run has
// two steps, and a "wait" step completed by a signal that a handler of the same
// run sends — and is SIGKILLed at every executor failpoint in turn, inside
// every handler call and at random moments, and again while it recovers. The
// fsynced ledger of (step or "undo:step", attempt, process) the handlers and
// compensation handlers write then proves: nothing committed ever ran again
// (no completed step, no undo found `compensated`, no child step), every re-run
// was of a call in flight at a kill, undos ran downstream-first, each
// completed compensable step was undone, and the runs end as uncrashed ones:
// the saga failed with every compensable step `compensated`, the flow completed
// with its child's output and its wait step completed exactly once.
//
// LOOM_CRASH_TRIALS sets the number of random-moment trials (default 60). The
// trials, kills, ledger and snapshots are the crash-torture harness's
// (support/crash_torture.hpp), as for test_crash.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "crash_saga_workflow.hpp"
#include "support/crash_torture.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace crash = loom::test::crash;
using crash::Kill, crash::Kills, crash::LedgerLine, crash::Snapshot;
using loom::StepStatus;

/// A store with its schema and nothing else, made once: each trial starts
/// from a copy, so that its processes spend their time on the runs.
void fresh_store(const loom::test::TempDir& dir) {
    static const loom::test::TempDir templates;
    static const std::string empty = [] {
        const auto path = templates.file("empty.db");
        loom::SqliteStore store(path);
        return path;
    }();
    std::filesystem::copy_file(empty, crash::db_file(dir));
}

constexpr auto kHang = std::chrono::seconds(3);
int hangs = 0;   // processes that hung, in this test program

// A clean process takes ~0.1 s. One that hangs (see the "no process hangs" case
// below) is SIGKILLed, which is one more kill at a random moment: the trial
// goes on and every check still holds.
crash::Exit run_child(const loom::test::TempDir& dir, const Kill& kill, unsigned threads, const char* mode = "") {
    auto exit = crash::run_child({LOOM_CRASH_SAGA_CHILD, crash::db_file(dir), crash::ledger_file(dir)}, kill,
                                 threads, crash::out_file(dir), {{"LOOM_CRASH_MODE", mode}}, kHang);
    hangs += exit.hung;
    return exit;
}

// Ledger keys: a step id, or "undo:" and the id of the step undone.
bool is_undo(const std::string& key) { return key.rfind(loom::test::kSagaUndo, 0) == 0; }
std::string undone(const std::string& key) { return key.substr(std::string(loom::test::kSagaUndo).size()); }

/// The stored runs, by workflow name ("saga", "flow", "sub").
std::map<std::string, loom::RunInfo> the_runs(const loom::test::TempDir& dir) {
    std::map<std::string, loom::RunInfo> runs;
    for (auto& run : crash::stored_runs(crash::db_file(dir))) {
        INFO("run " << run.id << " of " << run.workflow_name);
        REQUIRE(runs.emplace(run.workflow_name, std::move(run)).second);   // never started twice
    }
    return runs;
}

/// The scenario: each process of a trial resumes what is stored and starts
/// what is missing, on a copy of an empty store.
const crash::Scenario& scenario() {
    static const crash::Scenario s{
        fresh_store,
        [](const loom::test::TempDir& dir, const Kill& kill, unsigned threads) {
            return run_child(dir, kill, threads);
        },
        [](const loom::test::TempDir& dir) {
            std::vector<loom::RunInfo> runs;   // by workflow name, as the_runs() has them
            for (auto& [name, run] : the_runs(dir)) runs.push_back(std::move(run));
            return runs;
        }};
    return s;
}

struct Reference {
    std::map<std::string, loom::RunInfo> runs;
    std::set<std::string> ran;
    std::size_t calls = 0;
    long failpoint_hits = 0;
    std::chrono::microseconds duration{0};   // of the clean process, start to exit
};

const Reference& reference() {
    static const Reference ref = [] {
        loom::test::TempDir dir;
        const auto clean = crash::clean_run(scenario(), dir);
        Reference r;
        r.duration = clean.duration;
        r.runs = the_runs(dir);
        r.ran = crash::keys_in(clean.ledger);
        r.calls = clean.ledger.size();
        r.failpoint_hits = clean.failpoint_hits;
        // The scenario exercises what it claims to.
        REQUIRE(r.runs.size() == 3);
        const auto& saga = r.runs.at("saga");
        REQUIRE(saga.status == loom::RunStatus::failed);
        for (const char* s : {"s1", "s2", "s3"}) REQUIRE(saga.step(s)->status == StepStatus::compensated);
        REQUIRE(saga.step(loom::test::kSagaFails)->status == StepStatus::failed);
        const auto& flow = r.runs.at("flow");
        REQUIRE(flow.status == loom::RunStatus::completed);
        REQUIRE(r.runs.at("sub").status == loom::RunStatus::completed);
        REQUIRE(flow.step("pay")->output == r.runs.at("sub").output);
        REQUIRE(flow.step("approve")->output == loom::test::saga_signal_payload({{"seed", 11}}));
        REQUIRE(r.ran == std::set<std::string>{"s1", "s2", "s3", "boom", "undo:s1", "undo:s2", "undo:s3",
                                               "notify", "c1", "c2", "ship"});
        REQUIRE(r.calls == r.ran.size());   // each ran once
        return r;
    }();
    return ref;
}

/// Whether the store held the outcome of ledger call `key` at the kill.
bool settled(const Snapshot& snap, const std::string& key) {
    if (is_undo(key)) {
        auto it = snap.steps.find(undone(key));
        return it != snap.steps.end() && (it->second.status == StepStatus::compensated ||
                                          it->second.status == StepStatus::failed);
    }
    auto it = snap.steps.find(key);
    if (it == snap.steps.end()) return false;
    switch (it->second.status) {
        case StepStatus::completed:
        case StepStatus::failed:
        case StepStatus::skipped:
        case StepStatus::compensating:
        case StepStatus::compensated:
            return true;
        default:
            return false;
    }
}

/// Whether ledger line `i` was a call in flight at a kill that came before line `next`.
bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots) {
    return crash::in_flight_at_kill(ledger, i, next, snapshots,
                                    [](const Snapshot& snap, const LedgerLine& l) { return settled(snap, l.step); });
}

void check_ledger(const std::vector<LedgerLine>& ledger, const std::vector<Snapshot>& snapshots) {
    // What a kill found committed never runs again: no step that had completed
    // or failed (nor one being or been undone), no child step, no undo found
    // `compensated`; and a step's re-run counts a new attempt.
    crash::for_each_call_after_kill(ledger, snapshots, [&](const Snapshot& snap, std::size_t i) {
        const auto& l = ledger[i];
        const bool undo = is_undo(l.step);
        auto it = snap.steps.find(undo ? undone(l.step) : l.step);
        if (it == snap.steps.end()) return;
        const auto& s = it->second;
        INFO(l.step << " ran (attempt " << l.attempt << ", ledger line " << i + 1 << ") after a kill that found "
                    << it->first << " " << loom::to_string(s.status) << " with " << s.attempts << " attempts");
        if (undo) {
            CHECK(s.status != StepStatus::compensated);
        } else {
            CHECK_FALSE(settled(snap, l.step));
            CHECK(l.attempt > s.attempts);
        }
    });
    // Nothing here is retried, so each call after the first of a step or undo
    // is of one in flight at a kill, made by a later process.
    crash::for_each_rerun(ledger, [&](std::size_t i, std::size_t previous) {
        const auto& l = ledger[i];
        const auto& p = ledger[previous];
        INFO(l.step << " ran (attempt " << l.attempt << ") in process " << l.pid << " (ledger line " << i + 1
                    << ") after attempt " << p.attempt << " in process " << p.pid << " (line " << previous + 1
                    << ")");
        CHECK(in_flight_at_kill(ledger, previous, i, snapshots));
        CHECK(l.pid != p.pid);
        if (!is_undo(l.step)) CHECK(l.attempt >= p.attempt);   // an undo counts afresh after a restart
    });
    // Undos run downstream-first: when the undo of a step starts, those of the
    // compensable steps downstream of it have started before and are done —
    // none runs again — and the failure that triggered the saga came first.
    std::size_t first_failure = ledger.size();
    for (std::size_t i = 0; i < ledger.size(); ++i)
        if (ledger[i].step == loom::test::kSagaFails) {
            first_failure = i;
            break;
        }
    for (std::size_t i = 0; i < ledger.size(); ++i) {
        if (!is_undo(ledger[i].step)) continue;
        INFO(ledger[i].step << " at ledger line " << i + 1);
        CHECK(first_failure < i);
        for (const auto& d : loom::test::saga_downstream().at(undone(ledger[i].step))) {
            const std::string key = loom::test::kSagaUndo + d;
            bool before = false, after = false;
            for (std::size_t j = 0; j < ledger.size(); ++j)
                if (ledger[j].step == key) (j < i ? before : after) = true;
            INFO("downstream " << key);
            CHECK(before);
            CHECK_FALSE(after);
        }
    }
    // Every handler and compensation of a clean run ran: each completed
    // compensable step was undone.
    CHECK(crash::keys_in(ledger) == reference().ran);
}

// What a kill may find stored, as the report names it (steps are counted one
// by one): a step of the saga being undone; approve waiting for its signal, or
// pay for its child; the child run existing, unfinished; and a process the
// test killed as hung.
constexpr const char* kCompensating = "steps found compensating";
constexpr const char* kSuspended = "suspended";
constexpr const char* kChildLive = "with the child run live";
constexpr const char* kHung = "hung";

/// Counts in `kills` what a kill found stored.
void count_found(const Snapshot& snap, Kills& kills) {
    int compensating = 0, suspended = 0, child_live = 0;
    for (const auto& run : snap.runs) {
        for (const auto& s : run.steps) {
            compensating += s.status == StepStatus::compensating;
            suspended += s.status == StepStatus::suspended;
        }
        child_live += run.workflow_name == "sub" && !loom::is_final(run.status);
    }
    kills.add(kCompensating, compensating);
    kills.add(kSuspended, suspended);
    kills.add(kChildLive, child_live);
    kills.add(kHung, snap.hung);
}

Kills run_trial(const Kill& first, unsigned seed, unsigned threads) {
    loom::test::TempDir dir;
    const auto snapshots = crash::run_trial(scenario(), dir, first, seed, threads, reference().calls);

    // The runs end as uncrashed ones: every step's status, output and error.
    const auto runs = the_runs(dir);
    const auto& ref = reference().runs;
    REQUIRE(runs.size() == ref.size());
    for (const auto& [name, r] : ref) {
        INFO("run of " << name);
        const auto& run = runs.at(name);
        CHECK(run.status == r.status);
        CHECK(run.output == r.output);
        CHECK(run.error == r.error);
        crash::check_steps_end_as(run, r);
    }
    const auto& flow = runs.at("flow");
    CHECK(flow.step("pay")->output == runs.at("sub").output);
    CHECK(runs.at("sub").id == flow.id + ".pay");
    // The wait step and the sub-workflow step completed exactly once.
    std::map<std::string, int> completions;
    for (const auto& e : loom::SqliteStore(crash::db_file(dir)).load_events(flow.id))
        if (e.kind == loom::event::step_completed) ++completions[e.step_id];
    CHECK(completions["approve"] == 1);
    CHECK(completions["pay"] == 1);

    check_ledger(crash::read_ledger(dir), snapshots);
    crash::check_store(crash::db_file(dir));
    return crash::count_kills(snapshots, count_found);
}

}  // namespace

TEST_CASE("saga, sub-workflow, signal: SIGKILL at every failpoint never re-runs a committed step",
          "[reliability][crash][sqlite][saga][children][signals]") {
    const long hits = reference().failpoint_hits;
    REQUIRE(hits > long(reference().calls));
    const auto kills = crash::run_trials(crash::failpoint_sweep("*", hits, 0), 1, run_trial);
    CHECK(kills.total >= hits);
    CHECK(kills[kCompensating] > 0);
    CHECK(kills[kSuspended] > 0);
    CHECK(kills[kChildLive] > 0);
    CHECK(kills[kHung] == 0);
    WARN("saga failpoint trials: " << hits << ", " << kills);
}

TEST_CASE("saga, sub-workflow, signal: SIGKILL inside every handler never re-runs a committed step",
          "[reliability][crash][sqlite][saga][children][signals]") {
    const int calls = int(reference().calls);
    const auto kills = crash::run_trials(crash::handler_sweep(calls), 2, run_trial);
    CHECK(kills.total >= calls);
    CHECK(kills[kHung] == 0);
    WARN("saga handler trials: " << calls << ", " << kills);
}

TEST_CASE("saga, sub-workflow, signal: SIGKILL at random moments never re-runs a committed step",
          "[reliability][crash][sqlite][saga][children][signals]") {
    const int trials = crash::trials_from_env(60);
    // Kills anywhere in a clean process's lifetime, however fast this machine.
    const auto window = std::max<unsigned long>(2'000, reference().duration.count());
    const auto kills = crash::run_trials(crash::random_moments(2027, trials, window), 2, run_trial);
    CHECK(kills.total > 0);
    CHECK(kills[kHung] == 0);
    WARN("saga random-moment trials: " << trials << " (kills within " << window << " us), " << kills);
}

// A process must never hang. It did: a pool thread that waits for a commit —
// a handler calling Executor::signal, or starting a child run — waited without
// leading while a host thread led one round and handed the rest to the pool,
// where every thread was waiting. This case reproduces that directly (1
// thread, a handler signals its run while the host starts another:
// LOOM_CRASH_MODE=deadlock) and runs clean processes of the scenario.
TEST_CASE("saga, sub-workflow, signal: no process hangs", "[reliability][crash][sqlite][saga][children][signals]") {
    {
        loom::test::TempDir dir;
        const auto exit = run_child(dir, Kill{}, 1, "deadlock");
        INFO("a handler's signal() while the host leads a commit: " << (exit.hung ? "hung" : "finished"));
        CHECK_FALSE(exit.hung);
        if (!exit.killed) CHECK(exit.code == 0);
    }
    const int before = hangs;
    for (int i = 0; i < 20; ++i) {
        loom::test::TempDir dir;
        fresh_store(dir);
        const auto exit = run_child(dir, Kill{}, 2);
        INFO("clean process " << i);
        CHECK_FALSE(exit.hung);
        if (!exit.killed) CHECK(exit.code == 0);
    }
    CHECK(hangs == before);
}
