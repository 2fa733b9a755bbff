// StepContext (src/handlers/handler.cpp): typed input access that fails the step with
// [loom.input.missing] or [loom.input.type] naming run, step and key, instead of
// aborting the host; and how an attempt's exception is classified: what says
// the input is not what the handler reads is never retried.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/fixture.hpp"

using loom::Json;
using loom::testing::ErrorKind;
using loom::testing::StepHarness;

namespace {

/// Runs a workflow of one step "reads" (handler `read`, input `input`, up to 3
/// attempts 1 ms apart) to its end.
loom::RunInfo run_step(Json input, loom::HandlerRegistry::Function read) {
    loom::test::Fixture<> f;
    f.handlers.add("read", std::move(read));
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("reads", "read").input(std::move(input))
                                 .retry(loom::test::quick_retry(3))
                                 .build()},
                            {1});
    return executor.wait(executor.start("w"));
}

int attempts(const loom::RunInfo& run) { return run.step("reads")->attempts; }

/// What the handler's call of `read` threw, as an InputError's message.
template <class Read>
std::string input_error(Json input, Read read) {
    StepHarness h([read](loom::StepContext& ctx) -> Json { return read(ctx); });
    auto r = h.run_id("r1").step_id("s").input(std::move(input)).run();
    CHECK(r.error_kind == ErrorKind::fatal);
    return r.error;
}

}  // namespace

TEST_CASE("a missing input key fails the step once, naming run, step and key", "[handlers][handler][input]") {
    // ctx.input()["value"] on the const Json would abort this test process.
    auto run = run_step({{"other", 1}}, [](loom::StepContext& ctx) -> Json { return ctx.input<int>("value"); });
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(attempts(run) == 1);   // of 3: every attempt would read the same input
    CHECK(run.error == "step \"reads\" failed: [loom.input.missing] run " + run.id +
                           ", step \"reads\": no key \"value\" in the input");
}

TEST_CASE("a value of the wrong type fails the step once, naming the types", "[handlers][handler][input]") {
    auto run = run_step({{"value", "12"}}, [](loom::StepContext& ctx) -> Json { return ctx.input<int>("value"); });
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(attempts(run) == 1);
    CHECK(run.error == "step \"reads\" failed: [loom.input.type] run " + run.id +
                           ", step \"reads\": \"value\" is a string, expected an integer from "
                           "-2147483648 to 2147483647");
}

TEST_CASE("a for_each element's input error names the element", "[handlers][handler][input]") {
    loom::test::Fixture<> f;
    f.handlers.add("read", [](loom::StepContext& ctx) -> Json { return ctx.input<int>("n"); });
    auto& executor = f.open({loom::WorkflowBuilder("w", 1)
                                 .step("each", "read").for_each("${input.xs}").input("${item}")
                                 .build()},
                            {1});
    auto run = executor.wait(executor.start("w", {{"xs", {{{"n", 1}}, {{"m", 2}}}}}));
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(run.step("each")->error == "element 1 failed: [loom.input.missing] run " + run.id +
                                         ", step \"each\", element 1: no key \"n\" in the input");
}

TEST_CASE("input<T> reads a key as T", "[handlers][handler][input]") {
    StepHarness h([](loom::StepContext& ctx) -> Json {
        return {ctx.input<int>("i"), ctx.input<std::uint8_t>("small"), ctx.input<double>("d"),
                ctx.input<double>("i"), ctx.input<bool>("b"), ctx.input<std::string>("s"),
                ctx.input<Json>("o"), ctx.input<std::vector<int>>("v"), ctx.input<Json>("null")};
    });
    const Json input = {{"i", -7}, {"small", 255}, {"d", 2.5}, {"b", true}, {"s", "x"},
                        {"o", {{"k", 1}}}, {"v", {1, 2}}, {"null", nullptr}};
    auto r = h.input(input).run();
    REQUIRE(r.ok());
    CHECK(r.output == Json{-7, 255, 2.5, -7.0, true, "x", {{"k", 1}}, {1, 2}, nullptr});
}

TEST_CASE("input<T> refuses what would convert with a loss", "[handlers][handler][input]") {
    const std::string at = "[loom.input.type] run r1, step \"s\": ";
    CHECK(input_error({{"n", 2.5}}, [](auto& ctx) { return ctx.template input<int>("n"); }) ==
          at + "\"n\" is the number 2.5, expected an integer from -2147483648 to 2147483647");
    CHECK(input_error({{"n", true}}, [](auto& ctx) { return ctx.template input<long>("n"); }) ==
          at + "\"n\" is a boolean, expected an integer from -9223372036854775808 to 9223372036854775807");
    CHECK(input_error({{"n", 300}}, [](auto& ctx) { return ctx.template input<std::uint8_t>("n"); }) ==
          at + "\"n\" is the integer 300, expected an integer from 0 to 255");
    CHECK(input_error({{"n", -1}}, [](auto& ctx) { return ctx.template input<unsigned>("n"); }) ==
          at + "\"n\" is the integer -1, expected an integer from 0 to 4294967295");
    CHECK(input_error({{"n", "1"}}, [](auto& ctx) { return ctx.template input<double>("n"); }) ==
          at + "\"n\" is a string, expected a number");
    CHECK(input_error({{"n", nullptr}}, [](auto& ctx) { return ctx.template input<std::string>("n"); }) ==
          at + "\"n\" is null, expected a string");
    CHECK(input_error({{"n", 0}}, [](auto& ctx) { return ctx.template input<bool>("n"); }) ==
          at + "\"n\" is the integer 0, expected a boolean");
    // Another type: its from_json decides, and nlohmann's reason is kept.
    CHECK(input_error({{"v", {1, "2"}}}, [](auto& ctx) { return ctx.template input<std::vector<int>>("v"); }) ==
          at + "\"v\" is an array, expected a value of the type asked for "
               "([json.exception.type_error.302] type must be number, but is string)");
}

TEST_CASE("input<T> of a key needs an object input", "[handlers][handler][input]") {
    CHECK(input_error({1, 2}, [](auto& ctx) { return ctx.template input<int>("n"); }) ==
          "[loom.input.missing] run r1, step \"s\": no key \"n\": the input is an array, not an object");
    CHECK(input_error(nullptr, [](auto& ctx) { return ctx.template input<int>("n"); }) ==
          "[loom.input.missing] run r1, step \"s\": no key \"n\": the input is null, not an object");
}

TEST_CASE("input<T> of a JSON pointer reads nested values", "[handlers][handler][input]") {
    const Json order = {{"user", {{"name", "ada"}}}, {"items", {{{"qty", 2}}, {{"qty", 5}}}}};
    StepHarness h([](loom::StepContext& ctx) -> Json {
        return {ctx.input<std::string>("/user/name"_json_pointer),
                ctx.input<int>("/items/1/qty"_json_pointer), ctx.input<Json>(Json::json_pointer())};
    });
    auto r = h.input(order).run();
    REQUIRE(r.ok());
    CHECK(r.output == Json{"ada", 5, order});

    const std::string at = "[loom.input.missing] run r1, step \"s\": nothing at ";
    for (const char* absent : {"/user/mail", "/items/2/qty", "/items/x", "/items/01", "/items/-",
                               "/user/name/first", "/nothing/deeper"}) {
        CAPTURE(absent);
        CHECK(input_error(order, [absent](auto& ctx) { return ctx.template input<Json>(Json::json_pointer(absent)); }) ==
              at + absent + " in the input");
    }
    CHECK(input_error(order, [](auto& ctx) { return ctx.template input<int>("/user/name"_json_pointer); }) ==
          "[loom.input.type] run r1, step \"s\": /user/name is a string, expected an integer from "
          "-2147483648 to 2147483647");
}

TEST_CASE("input_or<T> gives the fallback where the value is absent or null", "[handlers][handler][input]") {
    StepHarness h([](loom::StepContext& ctx) -> Json {
        return {ctx.input_or("absent", 7), ctx.input_or("null", 8), ctx.input_or("n", 9),
                ctx.input_or("name", "anonymous"), ctx.input_or("/a/b"_json_pointer, 10),
                ctx.input_or("/a/none"_json_pointer, 11), ctx.input_or("/n/deeper"_json_pointer, "x")};
    });
    auto r = h.input({{"n", 1}, {"null", nullptr}, {"a", {{"b", 2}}}}).run();
    REQUIRE(r.ok());
    CHECK(r.output == Json{7, 8, 1, "anonymous", 2, 11, "x"});
    // Where there is no object to look into, every key is absent.
    CHECK(h.input(nullptr).run().output == Json{7, 8, 9, "anonymous", 10, 11, "x"});
    // A value of another type is a bug, not a default.
    CHECK(input_error({{"n", "1"}}, [](auto& ctx) { return ctx.input_or("n", 0); }) ==
          "[loom.input.type] run r1, step \"s\": \"n\" is a string, expected an integer from "
          "-2147483648 to 2147483647");
}

TEST_CASE("an input error names a compensation as such", "[handlers][handler][input]") {
    StepHarness h([](loom::StepContext& ctx) -> Json { return ctx.input<int>("ref"); });
    CHECK(h.run_id("r1").step_id("hotel").compensating().run().error ==
          "[loom.input.missing] run r1, step \"hotel\", compensation: no key \"ref\" in the input");
}

TEST_CASE("nlohmann's type_error and out_of_range from a handler are not retried", "[handlers][handler][retry]") {
    SECTION("type_error: a \"12\" read as an int") {
        auto run = run_step({{"value", "12"}}, [](loom::StepContext& ctx) -> Json {
            return ctx.input().at("value").get<int>();
        });
        CHECK(run.status == loom::RunStatus::failed);
        CHECK(attempts(run) == 1);
        CHECK(run.error == "step \"reads\" failed: [json.exception.type_error.302] type must be number, "
                           "but is string");
    }
    SECTION("out_of_range: at() of an absent key") {
        auto run = run_step(Json::object(), [](loom::StepContext& ctx) -> Json { return ctx.input().at("value"); });
        CHECK(attempts(run) == 1);
        CHECK(run.error == "step \"reads\" failed: [json.exception.out_of_range.403] key 'value' not found");
    }
    SECTION("parse_error stays retried: text from outside may be cut short") {
        auto run = run_step(Json::object(), [](loom::StepContext&) -> Json { return Json::parse("{\"half"); });
        CHECK(run.status == loom::RunStatus::failed);
        CHECK(attempts(run) == 3);
    }
}

TEST_CASE("a handler opts back into retries by rethrowing RetryableError", "[handlers][handler][retry]") {
    auto run = run_step({{"reply", {{"price", "n/a"}}}}, [](loom::StepContext& ctx) -> Json {
        const Json reply = ctx.input<Json>("reply");   // e.g. what an HTTP call returned
        try {
            return reply.at("price").get<double>();
        } catch (const Json::exception& e) {
            throw loom::RetryableError(e.what());
        }
    });
    CHECK(run.status == loom::RunStatus::failed);
    CHECK(attempts(run) == 3);
}

TEST_CASE("StepHarness classifies input errors as the executor does", "[handlers][handler][testing]") {
    auto kind = [](loom::HandlerRegistry::Function f) { return StepHarness(std::move(f)).run().error_kind; };
    CHECK(kind([](loom::StepContext& ctx) -> Json { return ctx.input<int>("x"); }) == ErrorKind::fatal);
    CHECK(kind([](loom::StepContext& ctx) -> Json { return ctx.input().at("x"); }) == ErrorKind::fatal);
    CHECK(kind([](loom::StepContext&) -> Json { return Json("s").get<int>(); }) == ErrorKind::fatal);
    CHECK(kind([](loom::StepContext&) -> Json { return Json::parse("{"); }) == ErrorKind::other);
    CHECK(kind([](loom::StepContext& ctx) -> Json {
              try {
                  return ctx.input().at("x");
              } catch (const Json::exception& e) {
                  throw loom::RetryableError(e.what());
              }
          }) == ErrorKind::retryable);
}

TEST_CASE("a compensation has its own idempotency key", "[handlers][handler][testing]") {
    StepHarness h([](loom::StepContext& ctx) -> Json { return {ctx.compensating(), ctx.idempotency_key()}; });
    CHECK(h.run_id("r1").step_id("charge").run().output == Json{false, "r1/charge"});
    CHECK(h.compensating().run().output == Json{true, "r1/charge/compensate"});
    CHECK(h.compensating(false).run().output == Json{false, "r1/charge"});
}
