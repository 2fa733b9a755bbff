// The process test_crash kills. It runs (or recovers) one parallel workflow on
// SQLite; every handler appends "step attempt pid" to an fsynced ledger first,
// then fails or succeeds as crash_attempt() says.
// It SIGKILLs itself after the N-th append when LOOM_CRASH_AFTER=N, or at the
// N-th executor failpoint when LOOM_FAILPOINT=NAME:N ("*" counts them all).
// On a clean exit it prints "failpoint hits N". LOOM_CRASH_THREADS sets the
// executor's threads (default 4; 1 makes the order of failpoints repeatable).
//
//   loom_crash_child run DB LEDGER       add the workflow, start one run, wait
//   loom_crash_child recover DB LEDGER   recover() and wait for every run
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <loom/loom.hpp>

#include "crash_workflow.hpp"
#include "failpoint.hpp"

namespace {

std::atomic<int> appends{0};
int crash_after = -1;
int ledger_fd = -1;

void append_ledger(const std::string& step, int attempt) {
    std::string line = step + " " + std::to_string(attempt) + " " + std::to_string(::getpid()) + "\n";
    if (::write(ledger_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fsync(ledger_fd) != 0) {
        std::perror("ledger");
        std::_Exit(3);
    }
    if (++appends == crash_after) ::raise(SIGKILL);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: loom_crash_child run|recover DB LEDGER\n";
        return 2;
    }
    const std::string mode = argv[1];
    if (const char* n = std::getenv("LOOM_CRASH_AFTER")) crash_after = std::atoi(n);
    if (const char* fp = std::getenv("LOOM_FAILPOINT")) {
        std::string spec = fp;
        auto colon = spec.rfind(':');
        loom::detail::arm_failpoint(spec.substr(0, colon), std::atol(spec.c_str() + colon + 1));
    }
    ledger_fd = ::open(argv[3], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (ledger_fd < 0) {
        std::perror("open ledger");
        return 3;
    }

    loom::SqliteStore store(argv[2]);
    loom::HandlerRegistry handlers;
    handlers.add("work", [](loom::StepContext& ctx) -> loom::Json {
        append_ledger(ctx.step_id(), ctx.attempt());
        // A little jitter widens the windows in which steps are in flight.
        thread_local std::mt19937 rng{std::random_device{}()};
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
        switch (loom::test::crash_attempt(ctx.step_id(), ctx.attempt())) {
            case loom::test::CrashAttempt::fails_retryable:
                throw loom::RetryableError("attempt " + std::to_string(ctx.attempt()) + " fails by design");
            case loom::test::CrashAttempt::fails_fatal:
                throw loom::FatalError("fails by design");
            case loom::test::CrashAttempt::succeeds:
                break;
        }
        return loom::test::crash_step_output(ctx.step_id(), ctx.input());
    });
    try {
        int code = 0;
        {
            const char* threads = std::getenv("LOOM_CRASH_THREADS");
            loom::Executor executor(store, handlers, {threads ? unsigned(std::atoi(threads)) : 4u});
            if (mode == "run") {
                executor.add_workflow(loom::test::crash_workflow());
                auto id = executor.start("crash", {{"seed", 7}});
                code = executor.wait(id).status == loom::RunStatus::completed ? 0 : 1;
            } else {
                for (const auto& id : executor.recover())
                    if (executor.wait(id).status != loom::RunStatus::completed) code = 1;
            }
        }
        std::cout << "failpoint hits " << loom::detail::failpoint_hits() << std::endl;
        return code;
    } catch (const std::exception& e) {
        std::cerr << "crash child: " << e.what() << "\n";
        return 4;
    }
}
