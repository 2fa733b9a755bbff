#include "support/crash_torture.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>
#include <catch2/catch.hpp>

namespace loom::test::crash {

namespace {

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

}  // namespace

Exit run_child(const std::vector<std::string>& argv, const Kill& kill, unsigned threads,
               const std::string& out_path, const Env& env,
               std::optional<std::chrono::milliseconds> hang_limit) {
    Env vars{{"LOOM_CRASH_AFTER", std::to_string(kill.in_handler)},
             {"LOOM_FAILPOINT", kill.failpoint},
             {"LOOM_CRASH_THREADS", std::to_string(threads)}};
    vars.insert(vars.end(), env.begin(), env.end());
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) fail("open child output");
    const pid_t pid = spawn(argv, vars, out);
    ::close(out);
    if (kill.after) {
        std::this_thread::sleep_for(*kill.after);
        ::kill(pid, SIGKILL);
    }
    // The hang limit counts from here: a kill after a delay is not a hang.
    Exit exit = wait_child(pid, hang_limit);
    std::ifstream in(out_path);
    exit.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return exit;
}

long failpoint_hits(const std::string& out) {
    long hits = 0;
    std::istringstream(out.substr(out.find("failpoint hits ") + 15)) >> hits;
    return hits;
}

Kill recovery_kill(std::mt19937& rng, int kills_so_far, std::size_t handler_calls) {
    Kill kill;
    if (kills_so_far < 5) {
        switch (rng() % 4) {
            case 0: kill.in_handler = 1 + int(rng() % handler_calls); break;
            case 1: kill.failpoint = "*:" + std::to_string(1 + rng() % 40); break;
            default: break;   // let it finish
        }
    }
    return kill;
}

int trials_from_env(int fallback) {
    const char* n = std::getenv("LOOM_CRASH_TRIALS");
    return n ? std::max(1, std::atoi(n)) : fallback;
}

std::string db_file(const TempDir& dir) { return dir.file("runs.db"); }
std::string ledger_file(const TempDir& dir) { return dir.file("ledger"); }
std::string out_file(const TempDir& dir) { return dir.file("out"); }

std::vector<LedgerLine> read_ledger(const std::string& path) {
    std::ifstream in(path);
    std::vector<LedgerLine> lines;
    LedgerLine l;
    while (in >> l.step >> l.attempt >> l.pid) lines.push_back(l);
    return lines;
}

std::vector<LedgerLine> read_ledger(const TempDir& dir) { return read_ledger(ledger_file(dir)); }

std::set<std::string> keys_in(const std::vector<LedgerLine>& ledger) {
    std::set<std::string> keys;
    for (const auto& l : ledger) keys.insert(l.step);
    return keys;
}

std::vector<RunInfo> stored_runs(const std::string& db) {
    SqliteStore store(db);
    std::vector<RunInfo> runs;
    for (const auto& r : store.list_runs()) runs.push_back(store.load_run(r.id).value());
    return runs;
}

bool in_flight_at_kill(const std::vector<LedgerLine>& ledger, std::size_t i, std::size_t next,
                       const std::vector<Snapshot>& snapshots, const Settled& settled) {
    for (const auto& snap : snapshots)
        if (snap.ledger_from <= i && i < snap.ledger_to && snap.ledger_to <= next && !settled(snap, ledger[i]))
            return true;
    return false;
}

CleanRun clean_run(const Scenario& scenario, const TempDir& dir, const std::string& failpoint) {
    if (scenario.prepare) scenario.prepare(dir);
    const auto start = std::chrono::steady_clock::now();
    const auto exit = scenario.run_child(dir, Kill{0, failpoint + ":0", std::nullopt}, 1);
    REQUIRE_FALSE(exit.killed);
    REQUIRE(exit.code == 0);
    CleanRun clean;
    clean.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    clean.ledger = read_ledger(dir);
    clean.failpoint_hits = failpoint_hits(exit.out);
    return clean;
}

std::vector<Snapshot> run_trial(const Scenario& scenario, const TempDir& dir, const Kill& first, unsigned seed,
                                unsigned threads, std::size_t handler_calls) {
    if (scenario.prepare) scenario.prepare(dir);
    std::mt19937 rng(seed);
    std::vector<Snapshot> snapshots;
    for (int process = 0;; ++process) {
        REQUIRE(process < 30);   // recovery must make progress
        Kill kill = first;
        if (process > 0) kill = recovery_kill(rng, int(snapshots.size()), handler_calls);   // now and then
        Snapshot snap;
        snap.ledger_from = read_ledger(dir).size();
        const auto exit = scenario.run_child(dir, kill, threads);
        if (!exit.killed) {
            INFO("child exit code " << exit.code);
            REQUIRE(exit.code == 0);
            if (!scenario.runs(dir).empty()) break;
            continue;   // killed before a run existed, and recovered nothing
        }
        snap.hung = exit.hung;
        snap.runs = scenario.runs(dir);
        for (const auto& run : snap.runs)   // StepInfo::items: the elements committed
            for (const auto& s : run.steps) snap.steps[s.step_id] = s;
        snap.ledger_to = read_ledger(dir).size();
        snapshots.push_back(std::move(snap));
    }
    return snapshots;
}

void for_each_call_after_kill(const std::vector<LedgerLine>& ledger, const std::vector<Snapshot>& snapshots,
                              const std::function<void(const Snapshot&, std::size_t i)>& check) {
    for (const auto& snap : snapshots)
        for (std::size_t i = snap.ledger_to; i < ledger.size(); ++i) check(snap, i);
}

void for_each_rerun(const std::vector<LedgerLine>& ledger,
                    const std::function<void(std::size_t i, std::size_t previous)>& check) {
    std::map<std::string, std::size_t> previous;
    for (std::size_t i = 0; i < ledger.size(); ++i) {
        auto it = previous.find(ledger[i].step);
        if (it != previous.end()) check(i, it->second);
        previous[ledger[i].step] = i;
    }
}

namespace {

template <class Unit>
void check_ends_as(const Unit& got, const Unit& ref) {
    CHECK(got.status == ref.status);
    CHECK(got.output == ref.output);
    CHECK(got.error == ref.error);
}

}  // namespace

void check_steps_end_as(const RunInfo& got, const RunInfo& ref) {
    REQUIRE(got.steps.size() == ref.steps.size());
    for (std::size_t i = 0; i < ref.steps.size(); ++i) {
        INFO("step " << ref.steps[i].step_id);
        check_ends_as(got.steps[i], ref.steps[i]);
        const auto& items = got.steps[i].items;
        REQUIRE(items.size() == ref.steps[i].items.size());
        for (std::size_t j = 0; j < items.size(); ++j) {
            INFO("element " << ref.steps[i].items[j].index);
            CHECK(items[j].index == ref.steps[i].items[j].index);
            check_ends_as(items[j], ref.steps[i].items[j]);
        }
    }
}

void check_store(const std::string& db) {
    SQLite::Database check(db);
    CHECK(check.execAndGet("PRAGMA integrity_check").getString() == "ok");
    CHECK(SqliteStore(db).unfinished_runs().empty());
}

std::vector<Plan> failpoint_sweep(const std::string& name, long hits, unsigned seed_base) {
    std::vector<Plan> plans;
    for (long n = 1; n <= hits; ++n)
        plans.push_back({Kill{0, name + ":" + std::to_string(n), std::nullopt}, seed_base + unsigned(n),
                         "first kill at failpoint " + name + " hit " + std::to_string(n) + " of " +
                             std::to_string(hits)});
    return plans;
}

std::vector<Plan> handler_sweep(int calls) {
    std::vector<Plan> plans;
    for (int n = 1; n <= calls; ++n)
        plans.push_back({Kill{n, "", std::nullopt}, unsigned(1000 + n),
                         "first kill in handler call " + std::to_string(n) + " of " + std::to_string(calls)});
    return plans;
}

std::vector<Plan> random_moments(unsigned seed, int trials, unsigned long window_us) {
    std::mt19937 rng(seed);
    std::vector<Plan> plans;
    for (int trial = 0; trial < trials; ++trial) {
        const auto delay = std::chrono::microseconds(rng() % window_us);
        plans.push_back({Kill{0, "", delay}, static_cast<unsigned>(rng()),
                         "trial " + std::to_string(trial) + ", first kill after " + std::to_string(delay.count()) +
                             " us"});
    }
    return plans;
}

void Kills::add(const std::string& what, int n) {
    for (auto& [name, count] : found_)
        if (name == what) {
            count += n;
            return;
        }
    found_.emplace_back(what, n);
}

int Kills::operator[](const std::string& what) const {
    for (const auto& [name, count] : found_)
        if (name == what) return count;
    return 0;
}

Kills& Kills::operator+=(const Kills& other) {
    total += other.total;
    for (const auto& [name, count] : other.found_) add(name, count);
    return *this;
}

std::ostream& operator<<(std::ostream& out, const Kills& kills) {
    out << "kills: " << kills.total;
    const char* separator = " (";
    for (const auto& [name, count] : kills.found_) {
        out << separator << count << " " << name;
        separator = ", ";
    }
    return out << (kills.found_.empty() ? "" : ")");
}

Kills count_kills(const std::vector<Snapshot>& snapshots, const Count& count) {
    Kills kills;
    for (const auto& snap : snapshots) {
        ++kills.total;
        count(snap, kills);
    }
    return kills;
}

Kills run_trials(const std::vector<Plan>& plans, unsigned threads, const Trial& trial) {
    Kills kills;
    for (const auto& plan : plans) {
        INFO(plan.what << " with " << threads << " threads");
        kills += trial(plan.first, plan.seed, threads);
    }
    return kills;
}

}  // namespace loom::test::crash
