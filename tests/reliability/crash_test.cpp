// Crash test: a child process runs a parallel workflow on SQLite and is
// SIGKILLed — inside handlers, at every executor failpoint in turn (a retry's
// or a sleep's wake among them, and a for_each element's claim, finish and
// retry wake), and at random moments — and again, several times, while it
// recovers. After each kill the test reads what was committed, steps and
// for_each elements; the fsynced ledger of (unit, attempt, process) the
// handlers write, where a unit of work is a step or one element, then proves
// that nothing committed ever ran again — no completed or failed step or
// element, no counted attempt — and that every re-run was a retry of a failed
// attempt or of one in flight at a kill. The final run must equal an
// uncrashed run's, element by element.
//
// LOOM_CRASH_TRIALS sets the number of random-moment trials (default 200; the
// long mode in docs/07-reliability.md runs 10,000). The trials, kills, ledger
// and snapshots are the crash-torture harness's (support/crash_torture.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/crash_torture.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace crash = loom::test::crash;
using crash::Kill, crash::Kills, crash::LedgerLine, crash::Snapshot;

crash::Exit run_child(const std::string& mode, const loom::test::TempDir& dir, const Kill& kill,
                      unsigned threads = 4) {
    return crash::run_child({LOOM_CRASH_CHILD, mode, crash::db_file(dir), crash::ledger_file(dir)}, kill,
                            threads, crash::out_file(dir));
}

std::optional<loom::RunInfo> the_run(const loom::test::TempDir& dir) {
    auto runs = crash::stored_runs(crash::db_file(dir));
    if (runs.empty()) return std::nullopt;
    REQUIRE(runs.size() == 1);
    return runs[0];
}

/// The scenario: one run of the crash workflow, started by the first process
/// of a trial and recovered by the others.
const crash::Scenario& scenario() {
    static const crash::Scenario s{
        nullptr,
        [](const loom::test::TempDir& dir, const Kill& kill, unsigned threads) {
            return run_child(the_run(dir) ? "recover" : "run", dir, kill, threads);
        },
        [](const loom::test::TempDir& dir) {
            auto run = the_run(dir);
            return run ? std::vector<loom::RunInfo>{std::move(*run)} : std::vector<loom::RunInfo>{};
        }};
    return s;
}

/// A clean run: how it ends, what its handlers did, and how many failpoints it
/// passes with 1 thread.
struct Reference {
    loom::RunInfo run;
    std::set<std::string> ran;   // units (steps, elements) whose handler ran
    std::size_t attempts = 0;    // handler calls (ledger lines)
    long failpoint_hits = 0;
    long element_hits = 0;       // of those, an element's claim or finish
};

const Reference& reference() {
    static const Reference ref = [] {
        loom::test::TempDir dir;
        const auto clean = crash::clean_run(scenario(), dir);
        Reference r;
        r.run = *the_run(dir);
        r.ran = crash::keys_in(clean.ledger);
        r.attempts = clean.ledger.size();
        r.failpoint_hits = clean.failpoint_hits;
        // The failpoint sweep kills at every one of those hits, so it covers
        // each element's transitions: one claim and one finish per attempt.
        for (const char* name : {"item.claimed", "item.finished"}) {
            loom::test::TempDir other;
            const long hits = crash::clean_run(scenario(), other, name).failpoint_hits;
            INFO("failpoint " << name);
            REQUIRE(hits == loom::test::kCrashItems + 1);   // element 1 is tried twice
            r.element_hits += hits;
        }
        // The workflow exercises what it claims to: a retry, a skip, a tolerated
        // failure, a sleep, a for_each with a retried element; every other step
        // completes, conditional or not.
        using loom::test::kCrashDoomed, loom::test::kCrashRetried, loom::test::kCrashSkipped,
            loom::test::kCrashSleep, loom::test::kCrashFan;
        REQUIRE(r.run.status == loom::RunStatus::completed);
        for (const auto& s : r.run.steps) {
            INFO("step " << s.step_id);
            const auto expected = s.step_id == kCrashSkipped  ? loom::StepStatus::skipped
                                  : s.step_id == kCrashDoomed ? loom::StepStatus::failed
                                                              : loom::StepStatus::completed;
            REQUIRE(s.status == expected);
        }
        REQUIRE(r.run.step(kCrashRetried)->attempts == 2);
        REQUIRE(r.run.step(kCrashSleep)->attempts == 1);
        const auto& items = r.run.step(kCrashFan)->items;
        REQUIRE(items.size() == std::size_t(loom::test::kCrashItems));
        std::set<std::string> outputs;   // all different: a swapped or lost element shows
        for (const auto& item : items) {
            INFO("element " << item.index);
            REQUIRE(item.status == loom::StepStatus::completed);
            REQUIRE(item.attempts == (item.index == loom::test::kCrashRetriedItem ? 2 : 1));
            outputs.insert(item.output.dump());
        }
        REQUIRE(outputs.size() == items.size());
        REQUIRE(r.ran.count(kCrashSkipped) == 0);
        REQUIRE(r.ran.count(kCrashSleep) == 0);
        REQUIRE(r.ran.count(kCrashFan) == 0);   // its elements ran, each under its own name
        REQUIRE(r.attempts == r.ran.size() + 2);   // the retried step and element ran twice, the others once
        return r;
    }();
    return ref;
}

/// What a kill found stored of a unit of work (a ledger key, crash_unit()).
struct Committed {
    loom::StepStatus status = loom::StepStatus::pending;
    int attempts = 0;
};

/// The stored state of a step, or of an element of a for_each step, at a kill;
/// nullopt if there was none. An element is stored once an attempt of it has
/// started (written lazily, as a step's start) or ended, so the rules below,
/// written for steps, hold for elements as they are.
std::optional<Committed> committed(const Snapshot& snap, const std::string& unit) {
    const auto [step_id, index] = loom::test::parse_crash_unit(unit);
    auto step = snap.steps.find(step_id);
    if (step == snap.steps.end()) return std::nullopt;
    if (!index) return Committed{step->second.status, step->second.attempts};
    for (const auto& item : step->second.items)
        if (item.index == *index) return Committed{item.status, item.attempts};
    return std::nullopt;
}

/// Whether the store held the outcome of `attempt` of `unit` at the kill: its
/// result, or its failure with the retry it waits for.
bool settled(const Snapshot& snap, const std::string& unit, int attempt) {
    const auto c = committed(snap, unit);
    if (!c) return false;
    switch (c->status) {
        case loom::StepStatus::completed:
        case loom::StepStatus::failed:
        case loom::StepStatus::skipped:
            return true;
        case loom::StepStatus::waiting:
            return c->attempts >= attempt;
        default:
            return false;
    }
}

/// Whether ledger line `i` was an attempt in flight at a kill that came before line `next`.
bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots) {
    return crash::in_flight_at_kill(ledger, i, next, snapshots, [](const Snapshot& snap, const LedgerLine& l) {
        return settled(snap, l.step, l.attempt);
    });
}

/// The kill of the process that wrote ledger line `i`, or nullptr if it was not killed.
const Snapshot* kill_of(std::size_t i, const std::vector<Snapshot>& snapshots) {
    for (const auto& snap : snapshots)
        if (snap.ledger_from <= i && i < snap.ledger_to) return &snap;
    return nullptr;
}

/// The promises, checked against the ledger (what ran) and the snapshots (what
/// was committed at each kill).
void check_ledger(const std::vector<LedgerLine>& ledger, const std::vector<Snapshot>& snapshots) {
    // What a kill found committed never runs again: no step or element that had
    // completed, failed for good or been skipped, and no attempt number the
    // store counted (a failed attempt waiting for its retry, or one started
    // before the kill).
    crash::for_each_call_after_kill(ledger, snapshots, [&](const Snapshot& snap, std::size_t i) {
        const auto& l = ledger[i];
        const auto s = committed(snap, l.step);
        if (!s) return;
        INFO(l.step << " ran attempt " << l.attempt << " (ledger line " << i + 1
                    << ") after a kill that found it " << loom::to_string(s->status) << " with "
                    << s->attempts << " attempts");
        CHECK(s->status != loom::StepStatus::completed);
        CHECK(s->status != loom::StepStatus::failed);
        CHECK(s->status != loom::StepStatus::skipped);
        CHECK(l.attempt > s->attempts);
    });
    // Each run of a step or element after its first has a reason: the previous
    // attempt failed in a way that is retried, or it was in flight at a kill. So
    // the step that always fails under "continue" runs once unless killed in
    // flight. Attempt numbers never go down, and go up unless the previous
    // attempt was in flight (its start may not have been counted).
    crash::for_each_rerun(ledger, [&](std::size_t i, std::size_t previous) {
        const auto& l = ledger[i];
        const auto& p = ledger[previous];
        const bool retried =
            loom::test::crash_attempt(p.step, p.attempt) == loom::test::CrashAttempt::fails_retryable;
        const bool in_flight = in_flight_at_kill(ledger, previous, i, snapshots);
        INFO(l.step << " ran attempt " << l.attempt << " in process " << l.pid << " (ledger line " << i + 1
                    << ") after attempt " << p.attempt << " in process " << p.pid << " (line "
                    << previous + 1 << ")");
        CHECK((retried || in_flight));
        CHECK(l.attempt >= p.attempt);
        if (!in_flight) CHECK(l.attempt > p.attempt);
        if (l.pid == p.pid) {   // a retry: it started once the failure was committed
            CHECK(l.attempt == p.attempt + 1);
            if (const Snapshot* snap = kill_of(i, snapshots)) {
                // A step is stored with its run, before any handler starts;
                // an element once its failure that this retries is stored.
                const auto s = committed(*snap, l.step);
                REQUIRE(s);
                INFO("at the kill the store had it " << loom::to_string(s->status) << " with "
                                                     << s->attempts << " attempts");
                CHECK((settled(*snap, l.step, p.attempt) || s->attempts >= l.attempt));
            }
        }
    });
    // No process ran the same attempt of a step or element twice.
    std::set<std::tuple<std::string, std::string, int>> seen;
    for (const auto& l : ledger) {
        INFO("process " << l.pid << " ran attempt " << l.attempt << " of " << l.step << " twice");
        CHECK(seen.emplace(l.pid, l.step, l.attempt).second);
    }
    // Every step and element whose handler runs in a clean run ran; no skipped step did.
    CHECK(crash::keys_in(ledger) == reference().ran);
}

// What a kill may find stored, as the report names it: the retried step had
// failed and waited for its retry; the sleep step waited on its timer; the
// retried element had failed and waited for its retry; the for_each ran with
// some elements committed, not all.
constexpr const char* kRetryWaiting = "while a retry waited";
constexpr const char* kAsleep = "while asleep";
constexpr const char* kElementWaiting = "while an element's retry waited";
constexpr const char* kPartDone = "with the for_each part done";

/// Counts in `kills` what a kill found stored.
void count_found(const Snapshot& snap, Kills& kills) {
    auto waits = [&snap](const std::string& unit) {
        const auto s = committed(snap, unit);
        return s && s->status == loom::StepStatus::waiting;
    };
    kills.add(kRetryWaiting, waits(loom::test::kCrashRetried));
    kills.add(kAsleep, waits(loom::test::kCrashSleep));
    kills.add(kElementWaiting,
              waits(loom::test::crash_unit(loom::test::kCrashFan, loom::test::kCrashRetriedItem)));
    auto fan = snap.steps.find(loom::test::kCrashFan);
    kills.add(kPartDone, fan != snap.steps.end() && fan->second.status == loom::StepStatus::running &&
                             std::any_of(fan->second.items.begin(), fan->second.items.end(),
                                         [](const loom::ItemInfo& item) {
                                             return item.status == loom::StepStatus::completed;
                                         }));
}

/// Runs one trial to completion: the first process dies as `first` says, the
/// recovering ones at random until one finishes.
Kills run_trial(const Kill& first, unsigned seed, unsigned threads) {
    loom::test::TempDir dir;
    const auto snapshots = crash::run_trial(scenario(), dir, first, seed, threads, reference().attempts);

    // The run ends as an uncrashed one: every step's and element's status,
    // output and error.
    auto run = the_run(dir);
    REQUIRE(run);
    const auto& ref = reference().run;
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == ref.output);
    crash::check_steps_end_as(*run, ref);

    check_ledger(crash::read_ledger(dir), snapshots);
    crash::check_store(crash::db_file(dir));
    return crash::count_kills(snapshots, count_found);
}

}  // namespace

TEST_CASE("SIGKILL at every executor failpoint never re-runs a committed step or element",
          "[reliability][crash][sqlite]") {
    const long hits = reference().failpoint_hits;
    REQUIRE(hits > long(reference().attempts));   // claims, results, commits, wakes
    const auto kills = crash::run_trials(crash::failpoint_sweep("*", hits, 0), 1, run_trial);
    CHECK(kills.total >= hits);
    // Some of those kills came while a step or an element waited on a timer,
    // and some while the for_each had committed some of its elements only.
    CHECK(kills[kRetryWaiting] > 0);
    CHECK(kills[kAsleep] > 0);
    CHECK(kills[kElementWaiting] > 0);
    CHECK(kills[kPartDone] > 0);
    WARN("failpoint trials: " << hits << " (" << reference().element_hits
                              << " at an element's claim or finish), " << kills);
}

TEST_CASE("SIGKILL as a retry or a sleep wakes never re-runs a committed step or element",
          "[reliability][crash][sqlite]") {
    const unsigned threads = GENERATE(1u, 4u);
    // The step's retry, the sleep and the element's retry wake, in any order.
    crash::run_trials(crash::failpoint_sweep("step.woken", 3, 2000), threads,
                      [](const Kill& first, unsigned seed, unsigned threads) {
                          const auto kills = run_trial(first, seed, threads);
                          CHECK(kills[kRetryWaiting] + kills[kAsleep] + kills[kElementWaiting] > 0);
                          return kills;
                      });
}

TEST_CASE("SIGKILL as an element is claimed or finishes never re-runs a committed element",
          "[reliability][crash][sqlite]") {
    // The failpoint sweep passes these with 1 thread, one element at a time;
    // here elements run max_parallel at once, beside other steps.
    Kills kills;
    for (const char* name : {"item.claimed", "item.finished"})
        kills += crash::run_trials(crash::failpoint_sweep(name, loom::test::kCrashItems + 1, 3000), 4,
                                   [](const Kill& first, unsigned seed, unsigned threads) {
                                       const auto trial = run_trial(first, seed, threads);
                                       CHECK(trial.total > 0);
                                       return trial;
                                   });
    WARN("element trials: " << 2 * (loom::test::kCrashItems + 1) << ", " << kills);
}

TEST_CASE("SIGKILL inside every handler never re-runs a committed step or element", "[reliability][crash][sqlite]") {
    const int attempts = int(reference().attempts);
    const auto kills = crash::run_trials(crash::handler_sweep(attempts), 4, run_trial);
    CHECK(kills.total >= attempts);
    WARN("handler trials: " << attempts << ", " << kills);
}

// Issue 9: a handler that kills its process on every attempt was retried for
// ever, since an attempt's start was written lazily and a crash lost it. Now
// an attempt in flight at a crash counts, and the first attempt after a
// restart is stored before its handler runs.
TEST_CASE("SIGKILL at every attempt of a step or an element: it ends failed after its attempts",
          "[reliability][crash][sqlite]") {
    using loom::test::kPoisonAttempts;
    loom::test::TempDir dir;
    int kills = 0;
    for (int process = 0;; ++process) {
        REQUIRE(process <= 2 * (kPoisonAttempts + 1));   // each poison kills at most attempts + 1 times
        const auto exit = run_child(process == 0 ? "poison" : "recover", dir, Kill{}, 2);
        if (!exit.killed) {
            REQUIRE(exit.code == 0);
            break;
        }
        ++kills;
    }
    const auto run = the_run(dir);
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);   // on_error "continue"
    const auto interrupted = "[loom.step.interrupted] attempt " + std::to_string(kPoisonAttempts) +
                             " was interrupted: its process stopped while it ran";
    const auto& poison = *run->step("poison");
    CHECK(poison.status == loom::StepStatus::failed);
    CHECK(poison.attempts == kPoisonAttempts);
    CHECK(poison.error == interrupted);
    const auto& each = *run->step("each");
    CHECK(each.status == loom::StepStatus::failed);
    for (const auto& item : each.items) {
        INFO("element " << item.index);
        if (item.index != loom::test::kPoisonItem) continue;
        CHECK(item.status == loom::StepStatus::failed);
        CHECK(item.attempts == kPoisonAttempts);
        CHECK(item.error == interrupted);
    }
    CHECK(run->step("report")->status == loom::StepStatus::completed);
    // Each poison ran at most its attempts + 1 times (its first start may die
    // before it is written), and no attempt number ran twice after it was stored.
    std::map<std::string, int> runs;
    for (const auto& line : crash::read_ledger(dir)) ++runs[line.step];
    CHECK(runs["poison"] <= kPoisonAttempts + 1);
    CHECK(runs[loom::test::crash_unit("each", loom::test::kPoisonItem)] <= kPoisonAttempts + 1);
    CHECK(kills >= kPoisonAttempts);   // one kill may interrupt both
    WARN("poison trial: " << kills << " kills");
}

TEST_CASE("SIGKILL at random moments never re-runs a committed step or element", "[reliability][crash][sqlite]") {
    const int trials = crash::trials_from_env(200);
    const auto kills = crash::run_trials(crash::random_moments(2026, trials, 60'000), 4, run_trial);
    CHECK(kills.total > 0);   // how many depends on timing: a quick child may finish first
    WARN("random-moment trials: " << trials << ", " << kills);
}
