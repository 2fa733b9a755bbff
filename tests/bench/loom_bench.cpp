// Loom's benchmark: executor overhead per no-op step on MemoryStore, and
// durable throughput on SqliteStore against the raw SQLite commit rate of the
// same disk, measured in the same run. Prints figures and the targets.
//
//   loom_bench [--dir DIR] [--repeat N] [--verbose] [--observer none|noop|metrics] [--memory-only]
//
// --observer attaches an observer to every executor: one that does nothing,
// or a loom::Metrics (what the first costs is the executor's telling).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>

#include <loom/loom.hpp>

#include "shapes.hpp"

namespace {

using loom::bench::big_limits;
using loom::bench::chain;
using loom::bench::median;

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

loom::Workflow fan(int n) {   // one source, n - 2 parallel steps, one sink
    loom::WorkflowBuilder b("fan", 1);
    b.step("src", "noop");
    std::vector<std::string> mids;
    for (int i = 0; i < n - 2; ++i) {
        mids.push_back("m" + std::to_string(i));
        b.step(mids.back(), "noop").after("src");
    }
    b.step("sink", "noop");
    for (const auto& m : mids) b.after(m);
    return b.build(big_limits());
}

loom::Workflow wavefront(int side) {   // cell (i, j) waits for (i-1, j) and (i, j-1)
    loom::WorkflowBuilder b("wavefront", 1);
    auto id = [](int i, int j) { return "c" + std::to_string(i) + "_" + std::to_string(j); };
    for (int i = 0; i < side; ++i)
        for (int j = 0; j < side; ++j) {
            b.step(id(i, j), "noop");
            if (i > 0) b.after(id(i - 1, j));
            if (j > 0) b.after(id(i, j - 1));
        }
    return b.build(big_limits());
}

loom::Workflow for_each() {   // one step over the run's input array
    return loom::WorkflowBuilder("for_each", 1).step("each", "noop").for_each("${input}").build();
}

/// What --observer attaches to every executor; null: none.
loom::Observer* observer = nullptr;

/// Best-of-N ns per step (or, with `elements`, per element of an input array
/// of that size) for one run of `wf` on a fresh MemoryStore.
double ns_per_step(const loom::Workflow& wf, loom::HandlerRegistry& handlers, int repeat,
                   std::size_t elements = 0) {
    double best = 1e300;
    for (int r = 0; r < repeat; ++r) {
        loom::MemoryStore store;
        loom::ExecutorOptions options;
        options.threads = 2;
        options.limits = big_limits();
        options.observer = observer;
        loom::Executor executor(store, handlers, options);
        executor.add_workflow(wf);
        auto t0 = Clock::now();
        const loom::Json input = elements ? loom::Json(std::vector<std::nullptr_t>(elements))
                                          : loom::Json::object();
        auto run = executor.wait(executor.start(wf.name(), input));
        double s = seconds_since(t0);
        if (run.status != loom::RunStatus::completed) {
            std::fprintf(stderr, "run failed: %s\n", run.error.c_str());
            std::exit(1);
        }
        best = std::min(best, s * 1e9 / static_cast<double>(elements ? elements : wf.steps().size()));
    }
    return best;
}

/// Counts transactions and the step writes they carry.
struct CountingStore : loom::StoreWrapper {
    using StoreWrapper::StoreWrapper;
    std::atomic<long> commits{0}, step_writes{0};
    void commit(const loom::Batch& b) override {
        StoreWrapper::commit(b);
        ++commits;
        step_writes += static_cast<long>(b.steps.size());
    }
};

/// Single-row transactions per second with synchronous=FULL in WAL mode: the
/// most a store that commits once per step could reach on this disk.
double raw_commit_rate(const fs::path& dir, int commits) {
    auto path = (dir / "raw.db").string();
    fs::remove(path);
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=FULL");
    db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    SQLite::Statement insert(db, "INSERT INTO t(v) VALUES ('x')");
    auto t0 = Clock::now();
    for (int i = 0; i < commits; ++i) {
        SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
        insert.exec();
        insert.reset();
        tx.commit();
    }
    return commits / seconds_since(t0);
}

/// Steps per second for `runs` runs of `wf` on a fresh SqliteStore, started by
/// `clients` threads at once (each starts its share one after another, then
/// waits for them), as a server's request handlers would.
bool verbose = false;

double durable_rate(const fs::path& dir, const loom::Workflow& wf, int runs, int clients,
                    loom::HandlerRegistry& handlers) {
    auto path = (dir / "durable.db").string();
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(path + ext);
    loom::SqliteStore sqlite(path);
    CountingStore store(sqlite);
    loom::ExecutorOptions options;
    options.threads = 2;
    options.observer = observer;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(wf);
    std::atomic<bool> failed{false};
    auto client = [&](int count) {
        std::vector<loom::RunId> ids;
        for (int i = 0; i < count; ++i) ids.push_back(executor.start(wf.name()));
        for (const auto& id : ids)
            if (executor.wait(id).status != loom::RunStatus::completed) failed = true;
    };
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) threads.emplace_back(client, runs / clients);
    for (auto& t : threads) t.join();
    const double s = seconds_since(t0);
    if (failed) std::exit(1);
    if (verbose)
        std::printf("    (%d run(s) of %zu steps from %d client thread(s): %ld transactions, %.1f "
                    "step writes each)\n",
                    runs, wf.steps().size(), clients, store.commits.load(),
                    double(store.step_writes) / double(store.commits));
    return static_cast<double>(runs) * static_cast<double>(wf.steps().size()) / s;
}

const char* verdict(bool ok) { return ok ? "ok" : "MISSED"; }

}  // namespace

int main(int argc, char** argv) {
    fs::path dir = fs::temp_directory_path() / "loom-bench";
    int repeat = 5;
    bool memory_only = false;
    loom::Observer noop;
    loom::Metrics metrics;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--verbose")) verbose = true;
        else if (!std::strcmp(argv[i], "--memory-only")) memory_only = true;
        else if (!std::strcmp(argv[i], "--observer") && i + 1 < argc &&
                 (!std::strcmp(argv[i + 1], "none") || !std::strcmp(argv[i + 1], "noop") ||
                  !std::strcmp(argv[i + 1], "metrics"))) {
            const std::string kind = argv[++i];
            observer = kind == "metrics" ? &metrics : kind == "noop" ? &noop : nullptr;
        }
        else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: loom_bench [--dir DIR] [--repeat N] [--verbose] "
                                 "[--observer none|noop|metrics] [--memory-only]\n");
            return 2;
        }
    }
    fs::create_directories(dir);

    loom::HandlerRegistry handlers;
    handlers.add("noop", [](loom::StepContext&) -> loom::Json { return nullptr; });

    std::printf("Executor overhead, no-op steps, MemoryStore, 2 threads (best of %d)%s\n", repeat,
                observer == &metrics ? ", loom::Metrics attached"
                : observer           ? ", a no-op observer attached"
                                     : "");
    bool ok = true;
    struct Shape {
        const char* name;
        loom::Workflow wf;
        std::size_t elements;   // for_each: per element
    } shapes[] = {{"chain 10000", chain("chain", 10'000), 0},
                  {"fan-out/fan-in 10000", fan(10'000), 0},
                  {"wavefront 100x100", wavefront(100), 0},
                  {"for_each 10000", for_each(), 10'000}};
    for (auto& s : shapes) {
        double ns = ns_per_step(s.wf, handlers, repeat, s.elements);
        ok &= ns <= 2000;
        std::printf("  %-22s %8.0f ns/step   target <= 2000   %s\n", s.name, ns, verdict(ns <= 2000));
    }
    if (memory_only) return ok ? 0 : 1;

    std::printf("\nDurable throughput, SqliteStore (synchronous=FULL, WAL), 2 threads, dir %s\n",
                dir.c_str());
    // The disk's speed drifts: bracket each durable measurement with raw ones
    // and report the median ratio over a few rounds.
    struct Case {
        const char* name;
        loom::Workflow wf;
        int runs, clients;
        double target;   // 0: for reference only
        std::vector<double> rates, ratios;
    } cases[] = {{"chain of 2000 steps", chain("dchain", 2000), 1, 1, 0.85, {}, {}},
                 {"200 concurrent runs x 10 steps", chain("d10", 10), 200, 200, 3, {}, {}},
                 {"200 runs x 10, started serially", chain("d10", 10), 200, 1, 0, {}, {}}};
    std::vector<double> raws;
    const int rounds = std::max(3, repeat / 2);
    for (int r = 0; r < rounds; ++r) {
        for (auto& c : cases) {
            const double before = raw_commit_rate(dir, 200);
            const double rate = durable_rate(dir, c.wf, c.runs, c.clients, handlers);
            const double after = raw_commit_rate(dir, 200);
            raws.push_back(before);
            raws.push_back(after);
            c.rates.push_back(rate);
            c.ratios.push_back(rate / ((before + after) / 2));
        }
    }
    std::printf("  raw SQLite single-row commits     %8.0f /s   (median of %zu, min %.0f, max %.0f)\n",
                median(raws), raws.size(), *std::min_element(raws.begin(), raws.end()),
                *std::max_element(raws.begin(), raws.end()));
    for (const auto& c : cases) {
        const double ratio = median(c.ratios);
        std::printf("  %-32s %8.0f steps/s   %5.2fx raw", c.name, median(c.rates), ratio);
        if (c.target > 0) {
            std::printf("   target >= %.2gx   %s\n", c.target, verdict(ratio >= c.target));
            ok &= ratio >= c.target;
        } else {
            std::printf("   (for reference)\n");
        }
    }
    std::printf("  (median over %d rounds; each durable figure is divided by the raw rate measured "
                "just before and after it)\n",
                rounds);
    fs::remove_all(dir);
    return ok ? 0 : 1;
}
