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
// long mode in docs/07-reliability.md runs 10,000).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include <SQLiteCpp/Database.h>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/crash_child.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace crash = loom::test::crash;
using crash::Kill, crash::LedgerLine, crash::Snapshot;

crash::Exit run_child(const std::string& mode, const loom::test::TempDir& dir, const Kill& kill,
                      unsigned threads = 4) {
    return crash::run_child({LOOM_CRASH_CHILD, mode, dir.file("runs.db"), dir.file("ledger")}, kill,
                            threads, dir.file("out"));
}

std::vector<LedgerLine> read_ledger(const loom::test::TempDir& dir) {
    return crash::read_ledger(dir.file("ledger"));
}

std::optional<loom::RunInfo> the_run(const loom::test::TempDir& dir) {
    auto runs = crash::stored_runs(dir.file("runs.db"));
    if (runs.empty()) return std::nullopt;
    REQUIRE(runs.size() == 1);
    return runs[0];
}

/// A clean run with 1 thread, counting the passes of failpoint `name` ("*": all).
crash::Exit clean_run(const loom::test::TempDir& dir, const std::string& name) {
    auto exit = run_child("run", dir, Kill{0, name + ":0", std::nullopt}, 1);
    REQUIRE_FALSE(exit.killed);
    REQUIRE(exit.code == 0);
    return exit;
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
        auto exit = clean_run(dir, "*");
        Reference r;
        r.run = *the_run(dir);
        const auto ledger = read_ledger(dir);
        r.ran = crash::keys_in(ledger);
        r.attempts = ledger.size();
        r.failpoint_hits = crash::failpoint_hits(exit.out);
        // The failpoint sweep kills at every one of those hits, so it covers
        // each element's transitions: one claim and one finish per attempt.
        for (const char* name : {"item.claimed", "item.finished"}) {
            loom::test::TempDir other;
            const long hits = crash::failpoint_hits(clean_run(other, name).out);
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
    for (const auto& snap : snapshots) {
        for (std::size_t i = snap.ledger_to; i < ledger.size(); ++i) {
            const auto& l = ledger[i];
            const auto s = committed(snap, l.step);
            if (!s) continue;
            INFO(l.step << " ran attempt " << l.attempt << " (ledger line " << i + 1
                        << ") after a kill that found it " << loom::to_string(s->status) << " with "
                        << s->attempts << " attempts");
            CHECK(s->status != loom::StepStatus::completed);
            CHECK(s->status != loom::StepStatus::failed);
            CHECK(s->status != loom::StepStatus::skipped);
            CHECK(l.attempt > s->attempts);
        }
    }
    // Each run of a step or element after its first has a reason: the previous
    // attempt failed in a way that is retried, or it was in flight at a kill. So
    // the step that always fails under "continue" runs once unless killed in
    // flight. Attempt numbers never go down, and go up unless the previous
    // attempt was in flight (its start may not have been counted).
    std::map<std::string, std::size_t> previous;
    for (std::size_t i = 0; i < ledger.size(); ++i) {
        const auto& l = ledger[i];
        auto it = previous.find(l.step);
        if (it != previous.end()) {
            const auto& p = ledger[it->second];
            const bool retried = loom::test::crash_attempt(p.step, p.attempt) ==
                                 loom::test::CrashAttempt::fails_retryable;
            const bool in_flight = in_flight_at_kill(ledger, it->second, i, snapshots);
            INFO(l.step << " ran attempt " << l.attempt << " in process " << l.pid << " (ledger line "
                        << i + 1 << ") after attempt " << p.attempt << " in process " << p.pid << " (line "
                        << it->second + 1 << ")");
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
        }
        previous[l.step] = i;
    }
    // No process ran the same attempt of a step or element twice.
    std::set<std::tuple<std::string, std::string, int>> seen;
    for (const auto& l : ledger) {
        INFO("process " << l.pid << " ran attempt " << l.attempt << " of " << l.step << " twice");
        CHECK(seen.emplace(l.pid, l.step, l.attempt).second);
    }
    // Every step and element whose handler runs in a clean run ran; no skipped step did.
    CHECK(crash::keys_in(ledger) == reference().ran);
}

/// Kills in one trial or many, how many found a step waiting on a timer, and
/// how many found the for_each under way.
struct Kills {
    int total = 0;
    int retry_waiting = 0;     // the retried step had failed and waited for its retry
    int sleeping = 0;          // the sleep step waited on its timer
    int element_waiting = 0;   // the retried element had failed and waited for its retry
    int elements_part_done = 0;   // the for_each ran with some elements committed, not all

    Kills& operator+=(const Kills& o) {
        total += o.total;
        retry_waiting += o.retry_waiting;
        sleeping += o.sleeping;
        element_waiting += o.element_waiting;
        elements_part_done += o.elements_part_done;
        return *this;
    }
};

std::ostream& operator<<(std::ostream& out, const Kills& k) {
    return out << "kills: " << k.total << " (" << k.retry_waiting << " while a retry waited, " << k.sleeping
               << " while asleep, " << k.element_waiting << " while an element's retry waited, "
               << k.elements_part_done << " with the for_each part done)";
}

/// Counts a kill in `kills` by what it found stored.
void count_kill(const Snapshot& snap, Kills& kills) {
    ++kills.total;
    auto waits = [&snap](const std::string& unit) {
        const auto s = committed(snap, unit);
        return s && s->status == loom::StepStatus::waiting;
    };
    kills.retry_waiting += waits(loom::test::kCrashRetried);
    kills.sleeping += waits(loom::test::kCrashSleep);
    kills.element_waiting +=
        waits(loom::test::crash_unit(loom::test::kCrashFan, loom::test::kCrashRetriedItem));
    auto fan = snap.steps.find(loom::test::kCrashFan);
    if (fan != snap.steps.end() && fan->second.status == loom::StepStatus::running)
        kills.elements_part_done += std::any_of(fan->second.items.begin(), fan->second.items.end(),
                                                [](const loom::ItemInfo& item) {
                                                    return item.status == loom::StepStatus::completed;
                                                });
}

/// Checks that a step or an element ended as in an uncrashed run: its status,
/// output and error (not its attempts: kills in flight add some).
template <class Unit>
void check_ends_as(const Unit& got, const Unit& ref) {
    CHECK(got.status == ref.status);
    CHECK(got.output == ref.output);
    CHECK(got.error == ref.error);
}

/// Runs one trial to completion: the first process dies as `first` says, the
/// recovering ones at random until one finishes.
Kills run_trial(const Kill& first, unsigned seed, unsigned threads = 4) {
    loom::test::TempDir dir;
    std::mt19937 rng(seed);
    Kills kills;
    std::vector<Snapshot> snapshots;

    for (int process = 0;; ++process) {
        REQUIRE(process < 30);   // recovery must make progress
        const bool started = the_run(dir).has_value();
        Kill kill = first;
        if (process > 0) kill = crash::recovery_kill(rng, kills.total, reference().attempts);   // now and then
        Snapshot snap;
        snap.ledger_from = read_ledger(dir).size();
        auto exit = run_child(started ? "recover" : "run", dir, kill, threads);
        if (!exit.killed) {
            INFO("child exit code " << exit.code);
            REQUIRE(exit.code == 0);
            if (the_run(dir).has_value()) break;
            continue;   // killed before the run existed, and recovered nothing
        }
        if (auto run = the_run(dir))   // StepInfo::items: the elements committed
            for (const auto& s : run->steps) snap.steps[s.step_id] = s;
        snap.ledger_to = read_ledger(dir).size();
        count_kill(snap, kills);
        snapshots.push_back(std::move(snap));
    }

    // The run ends as an uncrashed one: every step's and element's status,
    // output and error.
    auto run = the_run(dir);
    REQUIRE(run);
    const auto& ref = reference().run;
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == ref.output);
    REQUIRE(run->steps.size() == ref.steps.size());
    for (std::size_t i = 0; i < ref.steps.size(); ++i) {
        INFO("step " << ref.steps[i].step_id);
        check_ends_as(run->steps[i], ref.steps[i]);
        const auto& items = run->steps[i].items;
        REQUIRE(items.size() == ref.steps[i].items.size());
        for (std::size_t j = 0; j < items.size(); ++j) {
            INFO("element " << ref.steps[i].items[j].index);
            CHECK(items[j].index == ref.steps[i].items[j].index);
            check_ends_as(items[j], ref.steps[i].items[j]);
        }
    }

    check_ledger(read_ledger(dir), snapshots);
    SQLite::Database check(dir.file("runs.db"));
    CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
    CHECK(loom::SqliteStore(dir.file("runs.db")).unfinished_runs().empty());
    return kills;
}

}  // namespace

TEST_CASE("SIGKILL at every executor failpoint never re-runs a committed step or element",
          "[crash][sqlite]") {
    const long hits = reference().failpoint_hits;
    REQUIRE(hits > long(reference().attempts));   // claims, results, commits, wakes
    Kills kills;
    for (long n = 1; n <= hits; ++n) {
        INFO("first kill at failpoint hit " << n << " of " << hits);
        kills += run_trial(Kill{0, "*:" + std::to_string(n), std::nullopt}, unsigned(n), 1);
    }
    CHECK(kills.total >= hits);
    // Some of those kills came while a step or an element waited on a timer,
    // and some while the for_each had committed some of its elements only.
    CHECK(kills.retry_waiting > 0);
    CHECK(kills.sleeping > 0);
    CHECK(kills.element_waiting > 0);
    CHECK(kills.elements_part_done > 0);
    WARN("failpoint trials: " << hits << " (" << reference().element_hits
                              << " at an element's claim or finish), " << kills);
}

TEST_CASE("SIGKILL as a retry or a sleep wakes never re-runs a committed step or element",
          "[crash][sqlite]") {
    const unsigned threads = GENERATE(1u, 4u);
    for (int n = 1; n <= 3; ++n) {   // the step's retry, the sleep and the element's retry wake, in any order
        INFO("first kill at wake " << n << " with " << threads << " threads");
        const auto kills = run_trial(Kill{0, "step.woken:" + std::to_string(n), std::nullopt},
                                     unsigned(2000 + n), threads);
        CHECK(kills.retry_waiting + kills.sleeping + kills.element_waiting > 0);
    }
}

TEST_CASE("SIGKILL as an element is claimed or finishes never re-runs a committed element",
          "[crash][sqlite]") {
    // The failpoint sweep passes these with 1 thread, one element at a time;
    // here elements run max_parallel at once, beside other steps.
    Kills kills;
    for (const char* name : {"item.claimed", "item.finished"}) {
        for (int n = 1; n <= loom::test::kCrashItems + 1; ++n) {
            INFO("first kill at " << name << " hit " << n << " with 4 threads");
            const auto trial =
                run_trial(Kill{0, name + (":" + std::to_string(n)), std::nullopt}, unsigned(3000 + n), 4);
            CHECK(trial.total > 0);
            kills += trial;
        }
    }
    WARN("element trials: " << 2 * (loom::test::kCrashItems + 1) << ", " << kills);
}

TEST_CASE("SIGKILL inside every handler never re-runs a committed step or element", "[crash][sqlite]") {
    const int attempts = int(reference().attempts);
    Kills kills;
    for (int n = 1; n <= attempts; ++n) {
        INFO("first kill in handler call " << n);
        kills += run_trial(Kill{n, "", std::nullopt}, unsigned(1000 + n));
    }
    CHECK(kills.total >= attempts);
    WARN("handler trials: " << attempts << ", " << kills);
}

// Issue 9: a handler that kills its process on every attempt was retried for
// ever, since an attempt's start was written lazily and a crash lost it. Now
// an attempt in flight at a crash counts, and the first attempt after a
// restart is stored before its handler runs.
TEST_CASE("SIGKILL at every attempt of a step or an element: it ends failed after its attempts",
          "[crash][sqlite]") {
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
    for (const auto& line : read_ledger(dir)) ++runs[line.step];
    CHECK(runs["poison"] <= kPoisonAttempts + 1);
    CHECK(runs[loom::test::crash_unit("each", loom::test::kPoisonItem)] <= kPoisonAttempts + 1);
    CHECK(kills >= kPoisonAttempts);   // one kill may interrupt both
    WARN("poison trial: " << kills << " kills");
}

TEST_CASE("SIGKILL at random moments never re-runs a committed step or element", "[crash][sqlite]") {
    std::mt19937 rng(2026);
    const int trials = crash::trials_from_env(200);
    Kills kills;
    for (int trial = 0; trial < trials; ++trial) {
        const auto delay = std::chrono::microseconds(rng() % 60'000);
        INFO("trial " << trial << ", first kill after " << delay.count() << " us");
        kills += run_trial(Kill{0, "", delay}, static_cast<unsigned>(rng()));
    }
    CHECK(kills.total > 0);   // how many depends on timing: a quick child may finish first
    WARN("random-moment trials: " << trials << ", " << kills);
}
