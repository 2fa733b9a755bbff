// A host program as a user would write it: only Loom's public headers (and
// nlohmann::json through loom::Json). It must build against an installed Loom
// and against add_subdirectory(loom) alike, so it includes nothing else of Loom's
// dependencies. Exit status 0 means a 2-step run completed with the right output
// on both the in-memory and the SQLite store.
#include <loom/loom.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

namespace {

bool run_two_steps(loom::Store& store, const char* label) {
    loom::HandlerRegistry handlers;
    handlers.add("double", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("value") * 2;
    });
    // Without an input template a step receives its dependencies' outputs by id.
    handlers.add("increment", [](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("double") + 1;
    });
    loom::Workflow workflow = loom::WorkflowBuilder("consumer", 1)
                                  .step("double", "double").input({{"value", "${input.value}"}})
                                  .step("increment", "increment").after("double")
                                  .build();

    loom::ExecutorOptions options;
    options.threads = 2;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(workflow);
    loom::RunInfo run = executor.wait(executor.start("consumer", {{"value", 21}}));

    const loom::Json expected = {{"increment", 43}};
    bool ok = run.status == loom::RunStatus::completed && run.output == expected;
    std::printf("%s: run %s, output %s -> %s\n", label, std::string(loom::to_string(run.status)).c_str(),
                run.output.dump().c_str(), ok ? "ok" : "UNEXPECTED");
    return ok;
}

}  // namespace

int main() {
    namespace fs = std::filesystem;
    // A fresh file per process, so parallel or repeated runs never share state.
    fs::path db = fs::temp_directory_path() /
                  ("loom-consumer-" +
                   std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) +
                   ".db");
    bool ok = false;
    try {
        loom::MemoryStore memory;
        ok = run_two_steps(memory, "MemoryStore");
        loom::SqliteStore sqlite(db.string());
        ok = run_two_steps(sqlite, "SqliteStore") && ok;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        ok = false;
    }
    for (const char* suffix : {"", "-wal", "-shm"}) {
        std::error_code ignored;
        fs::remove(db.string() + suffix, ignored);
    }
    return ok ? 0 : 1;
}
