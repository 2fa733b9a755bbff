// resume: a run survives its process. A child process runs a 4-step workflow on
// a SQLite file and dies abruptly inside step 3; the parent opens the same file,
// calls recover(), and the run finishes. Steps 1 and 2 are not run again.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <loom/loom.hpp>

namespace {

const char* kDb = "resume.db";
const char* kLog = "resume.log";   // which step ran in which process

void add_handlers(loom::HandlerRegistry& h, bool die_in_step3) {
    h.add("work", [die_in_step3](loom::StepContext& ctx) -> loom::Json {
        std::ofstream(kLog, std::ios::app) << ctx.step_id() << " " << ::getpid() << "\n";
        if (die_in_step3 && ctx.step_id() == "step3") std::_Exit(1);   // a crash, no cleanup
        return ctx.step_id() + " done";
    });
}

int count_runs_of(const std::string& step) {
    std::ifstream in(kLog);
    std::string s, pid;
    int n = 0;
    while (in >> s >> pid) n += s == step;
    return n;
}

}  // namespace

int main() {
    std::remove(kDb);
    std::remove(kLog);
    auto workflow = loom::WorkflowBuilder("resumable", 1)
        .step("step1", "work")
        .step("step2", "work").after("step1")
        // Its attempt in flight at the crash counts: it needs a second one.
        .step("step3", "work").after("step2").retry({/*max_attempts=*/2})
        .step("step4", "work").after("step3")
        .build();

    if (pid_t child = ::fork(); child == 0) {
        loom::SqliteStore store(kDb);
        loom::HandlerRegistry h;
        add_handlers(h, /*die_in_step3=*/true);
        loom::Executor executor(store, h, {1});
        executor.add_workflow(workflow);
        executor.wait(executor.start("resumable"));
        return 0;   // not reached: step3 kills the process
    } else {
        int status = 0;
        ::waitpid(child, &status, 0);
        std::cout << "first process died in step3 (exit " << WEXITSTATUS(status) << ")\n";
    }

    loom::SqliteStore store(kDb);
    loom::HandlerRegistry h;
    add_handlers(h, /*die_in_step3=*/false);
    loom::Executor executor(store, h, {1});
    for (const auto& id : executor.recover()) {
        auto run = executor.wait(id);
        std::cout << "recovered run " << id << ": " << loom::to_string(run.status) << " "
                  << run.output.dump() << "\n";
    }
    std::cout << "step1 ran " << count_runs_of("step1") << "x, step2 " << count_runs_of("step2")
              << "x, step3 " << count_runs_of("step3") << "x, step4 " << count_runs_of("step4") << "x\n";
    // step3 ran twice (it was in flight at the crash); the others once.
    return count_runs_of("step1") == 1 && count_runs_of("step2") == 1 && count_runs_of("step3") == 2 &&
                   count_runs_of("step4") == 1
               ? 0
               : 1;
}
