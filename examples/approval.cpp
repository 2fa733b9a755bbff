// approval: the expense of expense.hpp waits for a manager's approval. The
// "wait" step holds no thread; the process even stops while it waits. The
// approval arrives as a signal to a run no process is running, is recorded in
// its history, and the next process's recover() picks it up and finishes it.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include <loom/loom.hpp>

#include "expense.hpp"

namespace {

bool expect(bool ok, const char* what) {
    if (!ok) std::cerr << "unexpected: " << what << "\n";
    return ok;
}

}  // namespace

int main() {
    example::Journal journal;
    loom::HandlerRegistry handlers;
    example::expense::add_handlers(handlers, journal);
    const loom::Workflow expense = example::expense::workflow();

    std::remove("approval.db");
    loom::RunId id;
    {
        loom::SqliteStore store("approval.db");
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(expense);
        id = executor.start("expense", {{"amount", 120}});
        // Wait until the run stands at the approval step, then stop this "process".
        while (executor.get_run(id).step("approve")->status != loom::StepStatus::suspended)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::cout << "waiting for approval; stopping\n";
    }

    loom::SqliteStore store("approval.db");
    loom::Executor executor(store, handlers, {2});
    executor.signal(id, "approval", {{"by", "grace"}});   // recorded: the run is not live yet
    executor.recover();
    auto run = executor.wait(id);
    std::cout << "run " << loom::to_string(run.status) << "\n";

    bool ok = expect(run.status == loom::RunStatus::completed, "the run did not complete");
    ok &= expect(run.output == loom::Json{{"pay", "paid"}}, "wrong output");
    ok &= expect(run.step("submit")->attempts == 1, "submit ran twice");
    ok &= expect(journal.lines().size() == 2, "a handler ran twice");
    return ok ? 0 : 1;
}
