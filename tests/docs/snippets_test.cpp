// The docs' C++ snippets that are not examples or other tests' first blocks:
// each is marked "snippet begin/end: NAME" here, copied verbatim into docs/
// (docs.snippets checks the copies), and run with what it promises checked.
#include <catch2/catch.hpp>

#include <functional>
#include <mutex>
#include <string>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/sync.hpp"

using loom::Json;

namespace {

// What docs/05-operations.md's snippet hands its work to.
struct Printer {
    std::mutex mutex;
    Json job;            // guarded by mutex
    std::string token;   // guarded by mutex; empty until submit()
    void submit(const Json& what, const std::string& callback_id) {
        std::lock_guard lock(mutex);
        job = what;
        token = callback_id;
    }
};

}  // namespace

TEST_CASE("docs: a handler reads its input with input<T>, input_or<T> and a JSON pointer", "[docs]") {
    loom::HandlerRegistry handlers;
    // snippet begin: input
    handlers.add("ship", [](loom::StepContext& ctx) -> loom::Json {
        const auto order = ctx.input<std::string>("order");                       // required
        const int kg = ctx.input<int>(loom::Json::json_pointer("/parcel/kg"));   // nested
        const bool express = ctx.input_or<bool>("express", false);               // optional
        return {{"order", order}, {"kg", kg}, {"express", express}};
    });
    // snippet end: input
    loom::testing::StepHarness h(handlers, "ship");

    auto r = h.input({{"order", "A-7"}, {"parcel", {{"kg", 3}}}}).run();
    CHECK(r.ok());
    CHECK(r.output == Json{{"order", "A-7"}, {"kg", 3}, {"express", false}});

    r = h.input({{"parcel", {{"kg", 3}}}}).run();   // no "order"
    CHECK(r.error.find("[loom.input.missing]") != std::string::npos);
    CHECK(r.error.find("order") != std::string::npos);
    CHECK_FALSE(r.retryable());

    r = h.input({{"order", "A-7"}, {"parcel", {{"kg", "3"}}}}).run();   // "3" is not an int
    CHECK(r.error.find("[loom.input.type]") != std::string::npos);
    CHECK_FALSE(r.retryable());
}

TEST_CASE("docs: a handler that reads JSON itself opts back into retries", "[docs]") {
    std::function<Json(int)> carrier = [](int kg) -> Json { return {{"price", 5 + 2 * kg}}; };
    loom::HandlerRegistry handlers;
    // snippet begin: retry-json
    handlers.add("quote", [&](loom::StepContext& ctx) -> loom::Json {
        const loom::Json reply = carrier(ctx.input<int>("kg"));   // the body of an HTTP reply
        try {
            return reply.at("price").get<double>();
        } catch (const loom::Json::exception& e) {   // an error body during an outage
            throw loom::RetryableError(e.what());
        }
    });
    // snippet end: retry-json
    handlers.add("quote_strict", [&](loom::StepContext& ctx) -> loom::Json {
        return carrier(ctx.input<int>("kg")).at("price").get<double>();
    });
    loom::testing::StepHarness quote(handlers, "quote");
    loom::testing::StepHarness strict(handlers, "quote_strict");
    quote.input({{"kg", 3}});
    strict.input({{"kg", 3}});

    auto r = quote.run();
    CHECK(r.ok());
    CHECK(r.output == 11.0);

    carrier = [](int) -> Json { return {{"error", "service unavailable"}}; };
    r = quote.run();                                   // caught and rethrown: retried
    CHECK(r.error_kind == loom::testing::ErrorKind::retryable);
    r = strict.run();                                  // out_of_range escapes: not retried
    CHECK(r.error_kind == loom::testing::ErrorKind::fatal);
    CHECK_FALSE(r.retryable());
}

TEST_CASE("docs: a suspended step is finished by complete() with its token", "[docs]") {
    Printer printer;
    loom::HandlerRegistry handlers;
    loom::MemoryStore store;
    loom::Executor executor(store, handlers, {2});
    // snippet begin: suspend
    handlers.add("print", [&](loom::StepContext& ctx) -> loom::Json {
        printer.submit(ctx.input(), /*callback id=*/ctx.completion_token());   // "<run>/<step>/<attempt>"
        ctx.suspend();                     // the step waits; no thread is held
        return nullptr;                    // ignored
    });
    // snippet end: suspend
    executor.add_workflow(loom::WorkflowBuilder("print", 1)
                              .step("print", "print").input({{"doc", "${input.doc}"}})
                              .build());
    const loom::RunId id = executor.start("print", {{"doc", "invoice.pdf"}});
    std::string token;
    REQUIRE(loom::test::eventually([&] {
        std::lock_guard lock(printer.mutex);
        token = printer.token;
        return !token.empty() && executor.get_run(id).step("print")->status == loom::StepStatus::suspended;
    }));
    CHECK(token == id + "/print/1");
    {
        std::lock_guard lock(printer.mutex);
        CHECK(printer.job == Json{{"doc", "invoice.pdf"}});
    }
    // snippet begin: suspend
    // later, from the printer's callback (any thread, or another process sharing the store):
    executor.complete(token, {{"pages", 3}});     // or executor.fail(token, "paper jam")
    // snippet end: suspend
    const loom::RunInfo run = executor.wait(id);
    CHECK(run.status == loom::RunStatus::completed);
    CHECK(run.output == Json{{"print", {{"pages", 3}}}});
}
