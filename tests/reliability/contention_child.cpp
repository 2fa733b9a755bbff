// Process B of test_contention: its own SqliteStore and Executor on the file
// that the test process (A) is running workflows on. It starts runs of its own,
// which its executor runs, while a reader thread lists and reads every run (A's
// too). Each handler call appends a ledger line; any exception that reaches a
// caller is printed and counted.
//
//   loom_contention_child DB LEDGER RUNS HOST_THREADS
//
// Prints "ready" once the store is open, then "runs R reads N errors E
// longest_commit_ms T" at the end; exits 0 only if every run completed and
// nothing threw.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <loom/loom.hpp>

#include "contention_workflow.hpp"

namespace {

int ledger_fd = -1;
std::atomic<int> errors{0};
std::mutex stderr_mutex;

void report(const std::string& what) {
    ++errors;
    std::lock_guard lock(stderr_mutex);
    std::cerr << "contention child: " << what << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: loom_contention_child DB LEDGER RUNS HOST_THREADS\n";
        return 2;
    }
    const std::string db = argv[1];
    const int runs = std::atoi(argv[3]);
    const int host_threads = std::atoi(argv[4]);
    ledger_fd = ::open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (ledger_fd < 0 || runs <= 0 || host_threads <= 0) {
        std::perror("contention child: arguments");
        return 2;
    }
    try {
        loom::SqliteStore sqlite(db);
        loom::test::TimedStore store(sqlite);
        loom::HandlerRegistry handlers;
        handlers.add("work", [](loom::StepContext& ctx) -> loom::Json {
            const std::string line = loom::test::ledger_line(ctx, ::getpid());
            if (::write(ledger_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
                throw std::runtime_error("ledger write failed");
            }
            thread_local std::mt19937 rng{std::random_device{}()};
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
            return loom::test::contention_output(ctx.step_id(), ctx.input());
        });
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(loom::test::contention_workflow());
        std::cout << "ready" << std::endl;

        std::atomic<int> hosts_left{host_threads};
        std::vector<std::thread> threads;
        for (int t = 0; t < host_threads; ++t) {
            threads.emplace_back([&, t] {
                for (int i = t; i < runs; i += host_threads) {
                    try {
                        auto id = executor.start("contention", {{"origin", "child"}, {"i", i}});
                        auto run = executor.wait(id);
                        if (run.status != loom::RunStatus::completed) {
                            report("run " + id + " ended " + std::string(to_string(run.status)) +
                                   ": " + run.error);
                        }
                    } catch (const std::exception& e) {
                        report(e.what());
                    }
                }
                --hosts_left;
            });
        }
        std::atomic<long> reads{0};
        std::thread reader([&] {
            std::mt19937 rng{7};
            loom::RunFilter filter;
            filter.limit = 20;
            while (hosts_left > 0) {
                try {
                    auto listed = executor.list_runs(filter);
                    ++reads;
                    if (listed.empty()) continue;
                    const auto& id = listed[rng() % listed.size()].id;
                    (void)executor.get_run(id);
                    (void)executor.history(id);
                    reads += 2;
                } catch (const std::exception& e) {
                    report(e.what());
                }
            }
        });
        for (auto& t : threads) t.join();
        reader.join();
        std::cout << "runs " << runs << " reads " << reads << " errors " << errors
                  << " longest_commit_ms " << store.longest_commit_ms() << std::endl;
    } catch (const std::exception& e) {
        report(e.what());
    }
    return errors == 0 ? 0 : 1;
}
