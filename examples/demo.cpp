// demo: what the README's first Quick start line runs. A small order-processing
// workflow persisted to demo.db; each step is printed as it finishes (after its
// result is committed), then the run's result.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include <loom/loom.hpp>

namespace {

/// Prints steps as they are committed.
class Printer : public loom::Observer {
public:
    void on_step_finished(const loom::StepEvent& e) override {
        std::lock_guard lock(mutex_);
        std::cout << "  step " << e.step_id << " " << loom::to_string(e.status);
        if (e.output) std::cout << " -> " << e.output->dump();
        std::cout << std::endl;
    }

private:
    std::mutex mutex_;
};

void pause(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main() {
    loom::HandlerRegistry handlers;
    handlers.add("price", [](loom::StepContext& ctx) -> loom::Json {
        pause(100);
        double total = 0;
        for (const auto& item : ctx.input<loom::Json>("items"))
            total += item.at("qty").get<int>() * item.at("price").get<double>();
        return total;
    });
    handlers.add("stock", [](loom::StepContext& ctx) -> loom::Json {
        pause(150);   // runs beside "price"
        return ctx.input<loom::Json>("items").size() <= 3;
    });
    handlers.add("invoice", [](loom::StepContext& ctx) -> loom::Json {
        pause(50);
        char total[32];
        std::snprintf(total, sizeof total, "%.2f", ctx.input<double>("total"));
        return "invoice for " + ctx.input<std::string>("customer") + ": " + total + " EUR";
    });

    auto order = loom::WorkflowBuilder("order", 1)
        .step("price", "price").input({{"items", "${input.items}"}})
        .step("stock", "stock").input({{"items", "${input.items}"}})
        .step("invoice", "invoice")
            .input({{"customer", "${input.customer}"}, {"total", "${steps.price.output}"}})
            .after({"price", "stock"})
        .build();

    std::remove("demo.db");
    loom::SqliteStore store("demo.db");
    Printer printer;
    loom::ExecutorOptions options;
    options.threads = 2;
    options.observer = &printer;
    loom::Executor executor(store, handlers, options);
    executor.add_workflow(order);

    loom::Json input = {{"customer", "Ada"},
                        {"items", {{{"sku", "A1"}, {"qty", 2}, {"price", 9.5}},
                                   {{"sku", "B2"}, {"qty", 1}, {"price", 20.0}}}}};
    std::cout << "Loom demo: running workflow \"order\" (persisted to demo.db)\n";
    auto id = executor.start("order", input);
    auto run = executor.wait(id);
    std::cout << "run " << id << " " << loom::to_string(run.status) << "\n"
              << "result: " << run.output.dump() << "\n";
    return run.status == loom::RunStatus::completed ? 0 : 1;
}
