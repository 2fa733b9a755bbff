// Loom's load benchmark: batches of 10,000 runs of a 10-step chain through one
// SqliteStore in one process, started by a few client threads so that runs
// overlap. Every run must complete. Prints throughput, resident memory (VmRSS at
// the start, after each batch, and the peak VmHWM) and the SQLite file size: the
// executor keeps no finished run in memory, so RSS after the second batch is
// about what it was after the first.
//
//   loom_load [--runs N] [--batches N] [--clients N] [--window N] [--threads N]
//             [--sync full|normal] [--dir DIR] [--keep]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>

#include <loom/loom.hpp>

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kSteps = 10;

/// A field of /proc/self/status in MiB ("VmRSS", "VmHWM").
double status_mib(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(field) + ":";
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) == 0) return std::atof(line.c_str() + prefix.size()) / 1024.0;
    }
    return -1;
}

double file_mib(const fs::path& path) {
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    return ec ? 0.0 : static_cast<double>(size) / (1024.0 * 1024.0);
}

/// s0 reads the run's input; each later step adds one to its predecessor's output.
loom::Workflow chain() {
    loom::WorkflowBuilder b("load", 1);
    b.step("s0", "inc").input({{"n", "${input.n}"}});
    for (int i = 1; i < kSteps; ++i) {
        const std::string prev = "s" + std::to_string(i - 1);
        b.step("s" + std::to_string(i), "inc").after(prev).input({{"n", "${steps." + prev + ".output}"}});
    }
    return b.build();
}

struct Options {
    int runs = 10'000;
    int batches = 2;
    int clients = 4;
    int window = 64;     // runs each client keeps in flight
    unsigned threads = 2;
    bool normal = false;  // synchronous=NORMAL instead of FULL
    fs::path dir = fs::temp_directory_path() / "loom-load";
    bool keep = false;
};

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: loom_load [--runs N] [--batches N] [--clients N] [--window N] "
                 "[--threads N] [--sync full|normal] [--dir DIR] [--keep]\n");
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    auto number = [&](int& i) {
        if (i + 1 >= argc) usage();
        int v = std::atoi(argv[++i]);
        if (v <= 0) usage();
        return v;
    };
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--runs")) o.runs = number(i);
        else if (!std::strcmp(argv[i], "--batches")) o.batches = number(i);
        else if (!std::strcmp(argv[i], "--clients")) o.clients = number(i);
        else if (!std::strcmp(argv[i], "--window")) o.window = number(i);
        else if (!std::strcmp(argv[i], "--threads")) o.threads = static_cast<unsigned>(number(i));
        else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc) o.dir = argv[++i];
        else if (!std::strcmp(argv[i], "--keep")) o.keep = true;
        else if (!std::strcmp(argv[i], "--sync") && i + 1 < argc) {
            const std::string mode = argv[++i];
            if (mode != "full" && mode != "normal") usage();
            o.normal = mode == "normal";
        } else {
            usage();
        }
    }
    return o;
}

/// Runs `runs` runs from `clients` threads, each keeping up to `window` of its
/// own in flight (start, and wait for the oldest once the window is full).
/// Returns the number of runs that did not complete with the expected output.
long batch(loom::Executor& executor, const Options& o, int first_n) {
    std::atomic<long> bad{0};
    std::atomic<int> next{0};
    auto client = [&] {
        std::deque<std::pair<loom::RunId, int>> in_flight;
        auto finish_oldest = [&] {
            const auto [id, n] = in_flight.front();
            in_flight.pop_front();
            const loom::RunInfo run = executor.wait(id);
            const auto expected = loom::Json{{"s" + std::to_string(kSteps - 1), n + kSteps}};
            if (run.status != loom::RunStatus::completed || run.output != expected) {
                if (bad++ == 0)
                    std::fprintf(stderr, "run %s: %s %s\n", id.c_str(),
                                 std::string(loom::to_string(run.status)).c_str(), run.error.c_str());
            }
        };
        for (int i; (i = next.fetch_add(1)) < o.runs;) {
            const int n = first_n + i;
            in_flight.emplace_back(executor.start("load", {{"n", n}}), n);
            if (static_cast<int>(in_flight.size()) >= o.window) finish_oldest();
        }
        while (!in_flight.empty()) finish_oldest();
    };
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c) threads.emplace_back(client);
    for (auto& t : threads) t.join();
    return bad;
}

/// The highest VmRSS read so far, by rss_mib() or the sampler.
std::atomic<double> peak_rss{0};

double rss_mib() {
    const double rss = status_mib("VmRSS");
    for (double seen = peak_rss; rss > seen && !peak_rss.compare_exchange_weak(seen, rss);) {
    }
    return rss;
}

/// Reads VmRSS every few milliseconds. VmRSS and VmHWM are both approximate
/// (the kernel folds per-thread counters in lazily), so the peak reported is
/// the higher of VmHWM and every VmRSS read.
class RssSampler {
public:
    RssSampler()
        : thread_([this] {
              while (!stop_) {
                  rss_mib();
                  std::this_thread::sleep_for(std::chrono::milliseconds(5));
              }
          }) {}
    ~RssSampler() {
        stop_ = true;
        thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    fs::create_directories(o.dir);
    const fs::path db = o.dir / "load.db";
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(db.string() + ext);

    loom::HandlerRegistry handlers;
    handlers.add("inc", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("n") + 1;
    });
    loom::SqliteOptions sqlite;
    sqlite.synchronous = o.normal ? loom::SqliteOptions::Synchronous::normal
                                  : loom::SqliteOptions::Synchronous::full;

    std::printf("Load: %d batch(es) of %d runs x %d steps, SqliteStore (synchronous=%s, WAL), "
                "%u executor threads, %d client threads with up to %d runs in flight each\n",
                o.batches, o.runs, kSteps, o.normal ? "NORMAL" : "FULL", o.threads, o.clients,
                o.window);
    std::printf("  database %s\n", db.c_str());
    RssSampler sampler;
    std::printf("  RSS at process start                             %7.1f MiB\n", rss_mib());
    long failed = 0;
    {
        loom::SqliteStore store(db.string(), sqlite);
        loom::ExecutorOptions options;
        options.threads = o.threads;
        loom::Executor executor(store, handlers, options);
        executor.add_workflow(chain());
        const double rss_start = rss_mib();
        std::printf("  RSS with the store open and the executor running %7.1f MiB\n", rss_start);

        for (int b = 0; b < o.batches; ++b) {
            const auto t0 = Clock::now();
            const long bad = batch(executor, o, b * o.runs);
            const double s = std::chrono::duration<double>(Clock::now() - t0).count();
            failed += bad;
            std::printf("  batch %d: %d runs in %.1f s = %.0f runs/s, %.0f steps/s; %ld not completed\n",
                        b + 1, o.runs, s, o.runs / s, o.runs * double(kSteps) / s, bad);
            std::printf("  RSS after batch %d                                %7.1f MiB", b + 1,
                        rss_mib());
            // Freed memory that glibc keeps for reuse is not held by Loom.
            malloc_trim(0);
            std::printf("   (%.1f MiB after malloc_trim)\n", rss_mib());
        }
        std::printf("  peak RSS (VmHWM, or a higher VmRSS sample)       %7.1f MiB\n",
                    std::max(status_mib("VmHWM"), peak_rss.load()));
        std::printf("  runs stored: %zu unfinished, %zu completed (of %d)\n",
                    store.unfinished_runs().size(), [&] {
                        loom::RunFilter done;
                        done.status = loom::RunStatus::completed;
                        done.limit = static_cast<std::size_t>(o.runs) * o.batches + 1;
                        return store.list_runs(done).size();
                    }(),
                    o.runs * o.batches);
        std::printf("  SQLite file %.1f MiB, WAL %.1f MiB (before closing)\n", file_mib(db),
                    file_mib(db.string() + "-wal"));
    }
    std::printf("  SQLite file %.1f MiB after closing (%.0f bytes per run)\n", file_mib(db),
                file_mib(db) * 1024 * 1024 / (double(o.runs) * o.batches));
    if (!o.keep) fs::remove_all(o.dir);
    if (failed) {
        std::fprintf(stderr, "%ld run(s) did not complete\n", failed);
        return 1;
    }
    return 0;
}
