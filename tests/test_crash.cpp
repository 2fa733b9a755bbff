// Crash test: a child process runs a parallel workflow on SQLite and is
// SIGKILLed — inside handlers, at every executor failpoint in turn, and at
// random moments — and again, several times, while it recovers. After each
// kill the test reads what was committed; the fsynced ledger the handlers write
// then proves that no committed step ever ran again and that every re-run was
// of a step in flight at a kill. The final output must equal an uncrashed run's.
//
// LOOM_CRASH_TRIALS sets the number of random-moment trials (default 200; the
// long mode in the README runs 10,000).
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "support/temp_dir.hpp"

namespace {

/// How a child process is to die, if it does.
struct Kill {
    int in_handler = 0;            // SIGKILL itself after the N-th ledger append
    std::string failpoint;         // or at an executor failpoint, "NAME:N"
    std::optional<std::chrono::microseconds> after;   // or be killed after this long
};

struct Exit {
    bool killed = false;
    int code = 0;
    std::string out;   // what it printed
};

Exit run_child(const std::string& mode, const loom::test::TempDir& dir, const Kill& kill,
               unsigned threads = 4) {
    const auto db = dir.file("runs.db"), ledger = dir.file("ledger"), out = dir.file("out");
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setenv("LOOM_CRASH_AFTER", std::to_string(kill.in_handler).c_str(), 1);
        ::setenv("LOOM_FAILPOINT", kill.failpoint.c_str(), 1);
        if (kill.failpoint.empty()) ::unsetenv("LOOM_FAILPOINT");
        ::setenv("LOOM_CRASH_THREADS", std::to_string(threads).c_str(), 1);
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::execl(LOOM_CRASH_CHILD, LOOM_CRASH_CHILD, mode.c_str(), db.c_str(), ledger.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    REQUIRE(pid > 0);
    if (kill.after) {
        std::this_thread::sleep_for(*kill.after);
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (WIFSIGNALED(status)) return {true, WTERMSIG(status), text};
    return {false, WEXITSTATUS(status), text};
}

struct LedgerLine {
    std::string step;
    int attempt = 0;
    std::string pid;
};

std::vector<LedgerLine> read_ledger(const loom::test::TempDir& dir) {
    std::ifstream in(dir.file("ledger"));
    std::vector<LedgerLine> lines;
    LedgerLine l;
    while (in >> l.step >> l.attempt >> l.pid) lines.push_back(l);
    return lines;
}

std::optional<loom::RunInfo> the_run(const loom::test::TempDir& dir) {
    loom::SqliteStore store(dir.file("runs.db"));
    auto runs = store.list_runs();
    if (runs.empty()) return std::nullopt;
    REQUIRE(runs.size() == 1);
    return store.load_run(runs[0].id);
}

/// A clean run: its output, and how many failpoints it passes with 1 thread.
struct Reference {
    loom::Json output;
    long failpoint_hits = 0;
};

const Reference& reference() {
    static const Reference ref = [] {
        loom::test::TempDir dir;
        auto exit = run_child("run", dir, Kill{0, "*:0", std::nullopt}, 1);
        REQUIRE_FALSE(exit.killed);
        REQUIRE(exit.code == 0);
        Reference r;
        r.output = the_run(dir)->output;
        std::istringstream(exit.out.substr(exit.out.find("failpoint hits ") + 15)) >> r.failpoint_hits;
        return r;
    }();
    return ref;
}

/// Runs one trial to completion: the first process dies as `first` says, the
/// recovering ones at random until one finishes. Returns the number of kills.
int run_trial(const Kill& first, unsigned seed, unsigned threads = 4) {
    loom::test::TempDir dir;
    std::mt19937 rng(seed);
    int kills = 0;
    struct Snapshot {
        std::set<std::string> committed;   // steps completed in the store at the kill
        std::set<std::string> started;     // steps the killed process had started
        std::size_t ledger_size = 0;
    };
    std::vector<Snapshot> snapshots;

    for (int process = 0;; ++process) {
        REQUIRE(process < 30);   // recovery must make progress
        const bool started = the_run(dir).has_value();
        Kill kill = first;
        if (process > 0) {   // a crash during recovery, now and then
            kill = Kill{};
            if (kills < 5) {
                switch (rng() % 4) {
                    case 0: kill.in_handler = 1 + int(rng() % loom::test::crash_step_count()); break;
                    case 1: kill.failpoint = "*:" + std::to_string(1 + rng() % 40); break;
                    default: break;   // let it finish
                }
            }
        }
        const auto before = read_ledger(dir).size();
        auto exit = run_child(started ? "recover" : "run", dir, kill, threads);
        if (!exit.killed) {
            INFO("child exit code " << exit.code);
            REQUIRE(exit.code == 0);
            if (the_run(dir).has_value()) break;
            continue;   // killed before the run existed, and recovered nothing
        }
        ++kills;
        Snapshot snap;
        if (auto run = the_run(dir))
            for (const auto& s : run->steps)
                if (s.status == loom::StepStatus::completed) snap.committed.insert(s.step_id);
        auto ledger = read_ledger(dir);
        for (std::size_t i = before; i < ledger.size(); ++i) snap.started.insert(ledger[i].step);
        snap.ledger_size = ledger.size();
        snapshots.push_back(std::move(snap));
    }

    auto run = the_run(dir);
    REQUIRE(run);
    CHECK(run->status == loom::RunStatus::completed);
    CHECK(run->output == reference().output);

    const auto ledger = read_ledger(dir);
    for (const auto& snap : snapshots) {
        for (std::size_t i = snap.ledger_size; i < ledger.size(); ++i) {
            const auto& step = ledger[i].step;
            INFO("step " << step << " ran again after its completion was committed");
            CHECK(snap.committed.count(step) == 0);
        }
    }
    // A step that ran more than once was in flight (started, not committed) at a kill.
    std::map<std::string, int> runs_of;
    for (const auto& l : ledger) ++runs_of[l.step];
    for (const auto& [step, n] : runs_of) {
        if (n < 2) continue;
        bool in_flight = false;
        for (const auto& snap : snapshots)
            in_flight |= snap.started.count(step) && !snap.committed.count(step);
        INFO("step " << step << " ran " << n << " times but was never in flight at a kill");
        CHECK(in_flight);
    }
    // Every step ran, and no process ran a step twice.
    CHECK(runs_of.size() == static_cast<std::size_t>(loom::test::crash_step_count()));
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& l : ledger) {
        INFO("process " << l.pid << " ran " << l.step << " twice");
        CHECK(seen.emplace(l.pid, l.step).second);
    }
    SQLite::Database check(dir.file("runs.db"));
    CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
    CHECK(loom::SqliteStore(dir.file("runs.db")).unfinished_runs().empty());
    return kills;
}

int trials_from_env() {
    const char* n = std::getenv("LOOM_CRASH_TRIALS");
    return n ? std::max(1, std::atoi(n)) : 200;
}

}  // namespace

TEST_CASE("SIGKILL at every executor failpoint never re-runs a committed step", "[crash][sqlite]") {
    const long hits = reference().failpoint_hits;
    REQUIRE(hits > loom::test::crash_step_count());   // claims, results, commits
    int kills = 0;
    for (long n = 1; n <= hits; ++n) {
        INFO("first kill at failpoint hit " << n << " of " << hits);
        kills += run_trial(Kill{0, "*:" + std::to_string(n), std::nullopt}, unsigned(n), 1);
    }
    CHECK(kills >= hits);
    WARN("failpoint trials: " << hits << ", kills: " << kills);
}

TEST_CASE("SIGKILL inside every handler never re-runs a committed step", "[crash][sqlite]") {
    int kills = 0;
    for (int n = 1; n <= loom::test::crash_step_count(); ++n) {
        INFO("first kill in handler " << n);
        kills += run_trial(Kill{n, "", std::nullopt}, unsigned(1000 + n));
    }
    CHECK(kills >= loom::test::crash_step_count());
}

TEST_CASE("SIGKILL at random moments never re-runs a committed step", "[crash][sqlite]") {
    std::mt19937 rng(2026);
    const int trials = trials_from_env();
    int kills = 0;
    for (int trial = 0; trial < trials; ++trial) {
        const auto delay = std::chrono::microseconds(rng() % 60'000);
        INFO("trial " << trial << ", first kill after " << delay.count() << " us");
        kills += run_trial(Kill{0, "", delay}, static_cast<unsigned>(rng()));
    }
    CHECK(kills > 0);   // how many depends on timing: a quick child may finish first
    WARN("random-moment trials: " << trials << ", kills: " << kills);
}
