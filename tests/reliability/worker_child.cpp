// A worker process of test_processes: its own store and Executor on the SQLite
// file or PostgreSQL database (DB: a connection string "host=...") the test
// shares with other workers.
//
//   loom_worker_child DB LEDGER LEASE_MS IDENTITY START RECOVER [STOP_AT]
//
// IDENTITY "-" takes the default. It starts START runs of the shared
// workflow, prints "started", then, if RECOVER is 1, calls recover() and
// prints "recovered N". It then runs until the store holds no unfinished run
// (adopting what others leave), prints "done", and exits 0; on an exception
// it prints it and exits 1. Every handler call appends a ledger line; the
// executor's warnings and errors are printed as "log MESSAGE". With STOP_AT
// (a step id), it runs one thread and stops itself in that step's first call.
// LOOM_WORKER_BUSY_MS in the environment: how long each call works (20 ms);
// LOOM_WORKER_RUNS: before "done", wait until the store holds at least that
// many runs (runs another process enqueues later).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <fcntl.h>

#include <loom/loom.hpp>

#include "processes_workflow.hpp"

namespace {

// Prints the executor's warnings and errors: a test reads what a worker said
// when it lost its leases.
struct PrintLogs : loom::Observer {
    void on_log(const loom::LogRecord& r) override {
        if (r.level >= loom::LogLevel::warn) std::cout << "log " << r.message << std::endl;
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7 && argc != 8) {
        std::cerr << "usage: loom_worker_child DB LEDGER LEASE_MS IDENTITY START RECOVER [STOP_AT]\n";
        return 2;
    }
    const int ledger = ::open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (ledger < 0) {
        std::perror("worker child: ledger");
        return 2;
    }
    try {
        const auto opened = loom::test::open_shared_store(argv[1]);
        loom::test::StoppableStore store(*opened);
        loom::HandlerRegistry handlers;
        const std::string stop_at = argc == 8 ? argv[7] : "";
        const char* busy = std::getenv("LOOM_WORKER_BUSY_MS");
        loom::test::add_ledger_handler(handlers, ledger, std::chrono::milliseconds(busy ? std::atoi(busy) : 20),
                                       stop_at, &store);
        loom::ExecutorOptions options;
        options.threads = stop_at.empty() ? 2 : 1;
        PrintLogs logs;
        options.observer = &logs;
        options.lease = std::chrono::milliseconds(std::atoi(argv[3]));
        if (std::string(argv[4]) != "-") options.identity = argv[4];
        loom::Executor executor(store, handlers, options);
        executor.add_workflow(loom::test::processes_workflow());
        for (int i = 0, n = std::atoi(argv[5]); i < n; ++i) executor.start("shared", {{"i", i}});
        std::cout << "started" << std::endl;
        if (std::string(argv[6]) == "1") std::cout << "recovered " << executor.recover().size() << std::endl;
        const char* expect = std::getenv("LOOM_WORKER_RUNS");
        const std::size_t runs = expect ? static_cast<std::size_t>(std::atoi(expect)) : 0;
        loom::RunFilter all;
        all.limit = runs;
        while (!store.unfinished_runs().empty() || (runs > 0 && store.list_runs(all).size() < runs))
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::cout << "done" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cout << "error " << e.what() << std::endl;
        return 1;
    }
}
