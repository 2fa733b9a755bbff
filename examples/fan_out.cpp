// fan_out: the thumbnails of thumbnails.hpp, a for_each over an album's
// images. The first process is stopped half way (paused, then shut down);
// the next one resumes the run, and resizes only the images whose thumbnail
// was not committed yet: each image is resized exactly once in all. One image
// fails its first try and is retried on its own.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include <loom/loom.hpp>

#include "thumbnails.hpp"

int main() {
    example::thumbnails::Service service;
    service.flaky = "summer/dunes.jpg";
    service.work = std::chrono::milliseconds(20);
    loom::HandlerRegistry handlers;
    example::thumbnails::add_handlers(handlers, service);
    const loom::Json input = {{"album", "summer"}, {"width", 160}};

    std::remove("fan_out.db");
    loom::RunId id;
    std::size_t done_before = 0;
    {
        loom::SqliteStore store("fan_out.db");
        loom::Executor executor(store, handlers, {2});
        executor.add_workflow(example::thumbnails::workflow());
        id = executor.start("thumbnails", input);
        // Each thumbnail is committed as it is made; stop after a few.
        while (executor.get_run(id).step("resize")->items.size() < 3)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        executor.pause(id);
    }   // shut down: the resizes in flight finish and are committed
    {
        loom::SqliteStore store("fan_out.db");
        const loom::RunInfo stopped = *store.load_run(id);
        for (const auto& item : stopped.step("resize")->items)
            done_before += item.status == loom::StepStatus::completed;
    }
    std::cout << "stopped with " << done_before << " of 7 thumbnails made\n";

    loom::SqliteStore store("fan_out.db");
    loom::Executor executor(store, handlers, {2});
    executor.add_workflow(example::thumbnails::workflow());
    executor.resume(id);
    executor.recover();
    auto run = executor.wait(id);
    std::cout << "run " << loom::to_string(run.status) << ": " << run.step("resize")->output.dump() << "\n";

    std::map<std::string, int> resized;
    for (const auto& line : service.journal.lines())
        if (line.rfind("resized ", 0) == 0) ++resized[line.substr(8)];
    bool ok = run.status == loom::RunStatus::completed && resized.size() == 7 &&
              run.step("resize")->output.at(2) == "summer/dunes_160.jpg" &&   // input order
              run.output == loom::Json{{"publish", 7}} && run.step("resize")->items.at(2).attempts == 2;
    for (const auto& [image, times] : resized) {
        if (times != 1) std::cerr << image << " was resized " << times << " times\n";
        ok = ok && times == 1;
    }
    return ok ? 0 : 1;
}
