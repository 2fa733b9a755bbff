// loom/testing.hpp: FakeClock (time, waits woken by advance/set, from other
// threads) and StepHarness (context, results, error kinds, logs, deadlines,
// cancellation). The block marked "step-harness" is docs/04-testing.md's first
// example verbatim; docs.snippets checks that.
// snippet begin: step-harness
#include <catch2/catch.hpp>
#include <loom/testing.hpp>

using namespace std::chrono_literals;

// The step under test: asks a carrier for a shipping quote.
class QuoteShipping : public loom::StepHandler {
public:
    using Carrier = std::function<int(int kg)>;   // throws RetryableError when down
    explicit QuoteShipping(Carrier carrier) : carrier_(std::move(carrier)) {}

    loom::Json run(loom::StepContext& ctx) override {
        const int kg = ctx.input<int>("weight_kg");
        if (kg <= 0) throw loom::FatalError("weight_kg must be positive");
        if (ctx.cancelled()) throw loom::RetryableError("no time left to ask the carrier");
        ctx.log("quote " + ctx.idempotency_key());
        return {{"price", carrier_(kg)}};
    }

private:
    Carrier carrier_;
};

TEST_CASE("docs: a step tested with StepHarness", "[testing][docs]") {
    using loom::testing::ErrorKind;
    loom::testing::FakeClock clock;   // 2026-01-01T00:00:00Z until advanced
    loom::testing::StepHarness h(std::make_shared<QuoteShipping>([](int kg) { return 5 + 2 * kg; }));
    h.clock(clock).input({{"weight_kg", 3}});

    auto r = h.run();                                       // success
    CHECK(r.ok());
    CHECK(r.output == loom::Json{{"price", 11}});
    CHECK(r.logs.at(0).message == "quote test-run/test-step");

    r = h.input({{"weight_kg", 0}}).run();                  // bad input: never retried
    CHECK(r.error_kind == ErrorKind::fatal);
    CHECK_FALSE(r.retryable());

    loom::testing::StepHarness down(std::make_shared<QuoteShipping>([](int) -> int {
        throw loom::RetryableError("carrier unavailable");
    }));
    r = down.input({{"weight_kg", 3}}).attempt(2).run();    // an outage: retried
    CHECK(r.error_kind == ErrorKind::retryable);
    CHECK(r.error == "carrier unavailable");

    h.input({{"weight_kg", 3}}).deadline(clock.now() + 30s);
    CHECK(h.run().ok());                                    // in time
    clock.advance(31s);                                     // no real waiting
    r = h.run();
    CHECK(r.retryable());
    CHECK(r.error == "no time left to ask the carrier");
}
// snippet end: step-harness

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <loom/error.hpp>

using loom::Json;
using loom::testing::ErrorKind;
using loom::testing::FakeClock;
using loom::testing::StepHarness;
using loom::testing::StepResult;

namespace {

/// Polls `done` in real time until it holds or `limit` passes; true if it held.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

/// A thread that waits on `clock` until `at`, re-checking as the executor does,
/// and then raises `woke`.
struct Sleeper {
    std::mutex mutex;
    std::condition_variable cv;
    bool stop = false;   // guarded by mutex
    std::atomic<bool> woke{false};
    std::thread thread;

    void start(const loom::Clock& clock, loom::TimePoint at) {
        thread = std::thread([this, &clock, at] {
            std::unique_lock lock(mutex);
            while (!stop && clock.now() < at) clock.wait_until(cv, lock, at);
            woke = true;
        });
    }
    void interrupt() {
        std::lock_guard lock(mutex);
        stop = true;
        cv.notify_all();
    }
};

/// The context a handler saw, copied out of it.
struct Seen {
    Json input;
    int attempt = 0;
    std::string run_id, step_id, key;
    std::optional<loom::TimePoint> deadline;
    bool cancelled = false;
};

StepHarness observing(Seen& seen) {
    return StepHarness([&seen](loom::StepContext& ctx) -> Json {
        seen = {ctx.input(), ctx.attempt(), ctx.run_id(), ctx.step_id(),
                ctx.idempotency_key(), ctx.deadline(), ctx.cancelled()};
        return nullptr;
    });
}

StepResult throwing(std::function<void()> thrower) {
    return StepHarness([thrower](loom::StepContext&) -> Json {
               thrower();
               return "unreachable";
           })
        .run();
}

struct Doubler : loom::StepHandler {
    Json run(loom::StepContext& ctx) override { return ctx.input<int>("x") * 2; }
};

}  // namespace

// ---------------------------------------------------------------- FakeClock

TEST_CASE("FakeClock starts at 2026-01-01T00:00:00Z or at the time it is given", "[testing]") {
    FakeClock clock;
    CHECK(std::chrono::system_clock::to_time_t(clock.now()) == 1767225600);
    CHECK(clock.now() == FakeClock::kDefaultStart);
    CHECK(clock.now() == clock.now());   // does not move by itself

    const loom::TimePoint start{std::chrono::seconds{1000}};
    FakeClock given(start);
    CHECK(given.now() == start);
}

TEST_CASE("FakeClock moves forward by advance() and set() only", "[testing]") {
    FakeClock clock;
    const auto t0 = clock.now();
    clock.advance(1500ms);
    CHECK(clock.now() == t0 + 1500ms);
    clock.advance(0s);
    CHECK(clock.now() == t0 + 1500ms);
    clock.set(t0 + 1h);
    CHECK(clock.now() == t0 + 1h);
    clock.set(t0 + 1h);   // the same time is not backwards
    CHECK(clock.now() == t0 + 1h);
}

TEST_CASE("FakeClock refuses to go backwards and keeps its time", "[testing]") {
    FakeClock clock;
    clock.advance(10s);
    const auto t = clock.now();
    try {
        clock.set(t - 1ms);
        FAIL("set() backwards did not throw");
    } catch (const loom::InvalidArgument& e) {
        CHECK(e.id() == loom::error_id::testing_clock_backwards);
    }
    CHECK_THROWS_AS(clock.advance(-1ms), loom::InvalidArgument);
    CHECK(clock.now() == t);
}

TEST_CASE("FakeClock::wait_until returns at once for a time already reached", "[testing]") {
    FakeClock clock;
    std::mutex mutex;
    std::condition_variable cv;
    std::unique_lock lock(mutex);
    const auto real_start = std::chrono::steady_clock::now();
    clock.wait_until(cv, lock, clock.now());
    clock.wait_until(cv, lock, clock.now() - 1h);
    CHECK(std::chrono::steady_clock::now() - real_start < 1s);
    CHECK(lock.owns_lock());
    CHECK(clock.waiters() == 0);
}

TEST_CASE("a thread waiting until now+1s wakes soon after advance(1s), not before",
          "[testing]") {
    const int threads = GENERATE(1, 2, 4);
    CAPTURE(threads);
    FakeClock clock;
    const auto at = clock.now() + 1s;
    std::vector<std::unique_ptr<Sleeper>> sleepers;
    for (int i = 0; i < threads; ++i) {
        sleepers.push_back(std::make_unique<Sleeper>());
        sleepers.back()->start(clock, at);
    }
    auto woken = [&] {
        int n = 0;
        for (auto& s : sleepers) n += s->woke ? 1 : 0;
        return n;
    };
    REQUIRE(eventually([&] { return clock.waiters() == static_cast<std::size_t>(threads); }));

    std::this_thread::sleep_for(30ms);
    CHECK(woken() == 0);
    clock.advance(999ms);   // wakes them; they see it is not yet time and wait again
    std::this_thread::sleep_for(30ms);
    CHECK(woken() == 0);
    REQUIRE(eventually([&] { return clock.waiters() == static_cast<std::size_t>(threads); }));

    const auto real_start = std::chrono::steady_clock::now();
    clock.advance(1ms);
    // Well before the real second passes (the waits were started ~60 ms ago).
    CHECK(eventually([&] { return woken() == threads; }, 500ms));
    CHECK(std::chrono::steady_clock::now() - real_start < 500ms);
    for (auto& s : sleepers) s->thread.join();
    CHECK(clock.waiters() == 0);
}

TEST_CASE("FakeClock::set() wakes a waiter whose time it reaches", "[testing]") {
    FakeClock clock;
    Sleeper sleeper;
    const auto at = clock.now() + 24h;
    sleeper.start(clock, at);
    REQUIRE(eventually([&] { return clock.waiters() == 1; }));
    clock.set(at + 1s);
    CHECK(eventually([&] { return sleeper.woke.load(); }, 500ms));
    sleeper.thread.join();
}

TEST_CASE("FakeClock::wait_until also returns when the caller's cv is notified", "[testing]") {
    FakeClock clock;
    Sleeper sleeper;
    sleeper.start(clock, clock.now() + 24h);
    REQUIRE(eventually([&] { return clock.waiters() == 1; }));
    sleeper.interrupt();
    CHECK(eventually([&] { return sleeper.woke.load(); }, 500ms));
    sleeper.thread.join();
    CHECK(clock.waiters() == 0);
}

TEST_CASE("FakeClock loses no wake-up when waits and advances race", "[testing]") {
    // A waiter goes through 200 deadlines, 1 s of fake time apart; the test
    // advances whenever it waits. A notify lost in the race costs at most
    // kMaxWakeDelay, so this ends quickly whatever the interleaving.
    FakeClock clock;
    constexpr int rounds = 200;
    std::atomic<int> done{0};
    std::thread waiter([&] {
        std::mutex mutex;
        std::condition_variable cv;
        std::unique_lock lock(mutex);
        const auto start = clock.now();
        for (int i = 1; i <= rounds; ++i) {
            const auto at = start + std::chrono::seconds(i);
            while (clock.now() < at) clock.wait_until(cv, lock, at);
            done = i;
        }
    });
    const auto real_start = std::chrono::steady_clock::now();
    for (int i = 1; i <= rounds; ++i) {
        REQUIRE(eventually([&] { return clock.waiters() == 1 || done >= i; }));
        clock.advance(1s);
        REQUIRE(eventually([&] { return done >= i; }));
    }
    waiter.join();
    CHECK(done == rounds);
    CHECK(std::chrono::steady_clock::now() - real_start < 10s);
}

// ---------------------------------------------------------------- StepHarness

TEST_CASE("StepHarness gives the handler the documented defaults", "[testing]") {
    Seen seen;
    auto r = observing(seen).run();
    CHECK(r.ok());
    CHECK(r.error.empty());
    CHECK(r.error_kind == ErrorKind::none);
    CHECK(seen.input == Json::object());
    CHECK(seen.attempt == 1);
    CHECK(seen.run_id == "test-run");
    CHECK(seen.step_id == "test-step");
    CHECK(seen.key == "test-run/test-step");
    CHECK_FALSE(seen.deadline.has_value());
    CHECK_FALSE(seen.cancelled);
}

TEST_CASE("StepHarness setters reach the context and the idempotency key follows the ids",
          "[testing]") {
    Seen seen;
    auto h = observing(seen);
    h.input({{"x", 2}, {"ref", "${input.x}"}}).attempt(3).run_id("r-42").step_id("charge");
    REQUIRE(h.run().ok());
    CHECK(seen.input == Json{{"x", 2}, {"ref", "${input.x}"}});   // passed as given
    CHECK(seen.attempt == 3);
    CHECK(seen.run_id == "r-42");
    CHECK(seen.step_id == "charge");
    CHECK(seen.key == "r-42/charge");

    try {
        h.attempt(0);
        FAIL("attempt(0) did not throw");
    } catch (const loom::InvalidArgument& e) {
        CHECK(e.id() == loom::error_id::testing_bad_attempt);
    }
}

TEST_CASE("StepHarness runs a StepHandler, a function or a registered handler", "[testing]") {
    CHECK(StepHarness(std::make_shared<Doubler>()).input({{"x", 4}}).run().output == 8);
    CHECK(StepHarness([](loom::StepContext&) -> Json { return "f"; }).run().output == "f");

    loom::HandlerRegistry registry;
    registry.add("double", std::make_shared<Doubler>());
    StepHarness h(registry, "double");
    CHECK(h.input({{"x", 21}}).run().output == 42);

    try {
        StepHarness missing(registry, "nope");
        FAIL("an unknown handler name did not throw");
    } catch (const loom::NotFound& e) {
        CHECK(e.id() == loom::error_id::handler_unknown);
    }
    CHECK_THROWS_AS(StepHarness(std::shared_ptr<loom::StepHandler>()), loom::InvalidArgument);
    CHECK_THROWS_AS(StepHarness(loom::HandlerRegistry::Function()), loom::InvalidArgument);
}

TEST_CASE("StepHarness classifies what the handler throws", "[testing]") {
    SECTION("RetryableError: retryable") {
        auto r = throwing([] { throw loom::RetryableError("try later"); });
        CHECK(r.error_kind == ErrorKind::retryable);
        CHECK(r.error == "try later");
        CHECK(r.retryable());
        CHECK_FALSE(r.ok());
        CHECK(r.output.is_null());
    }
    SECTION("FatalError: fatal, never retried") {
        auto r = throwing([] { throw loom::FatalError("bad card"); });
        CHECK(r.error_kind == ErrorKind::fatal);
        CHECK(r.error == "bad card");
        CHECK_FALSE(r.retryable());
        CHECK_FALSE(r.ok());
    }
    SECTION("any other std::exception: other, retried like retryable") {
        auto r = throwing([] { throw std::runtime_error("disk on fire"); });
        CHECK(r.error_kind == ErrorKind::other);
        CHECK(r.error == "disk on fire");
        CHECK(r.retryable());
    }
    SECTION("a missing input key fails every attempt alike: fatal; another loom::Error: other") {
        auto r = throwing([] { throw loom::InvalidArgument(loom::error_id::input_missing, "no x"); });
        CHECK(r.error_kind == ErrorKind::fatal);
        CHECK(r.error == "[loom.input.missing] no x");
        CHECK(throwing([] { throw loom::NotFound("loom.x", "gone"); }).error_kind == ErrorKind::other);
    }
    SECTION("an exception not derived from std::exception: other") {
        auto r = throwing([] { throw 42; });
        CHECK(r.error_kind == ErrorKind::other);
        CHECK(r.error == "unknown exception (not derived from std::exception)");
        CHECK(r.retryable());
    }
    SECTION("an exception with an empty message still has an error") {
        auto r = throwing([] { throw loom::RetryableError(""); });
        CHECK(r.error_kind == ErrorKind::retryable);
        CHECK(r.error == "exception without a message");
    }
}

TEST_CASE("ErrorKind prints by name", "[testing]") {
    CHECK(loom::testing::to_string(ErrorKind::none) == "none");
    CHECK(loom::testing::to_string(ErrorKind::retryable) == "retryable");
    CHECK(loom::testing::to_string(ErrorKind::fatal) == "fatal");
    CHECK(loom::testing::to_string(ErrorKind::other) == "other");
    std::ostringstream out;
    out << ErrorKind::fatal;
    CHECK(out.str() == "fatal");
}

TEST_CASE("StepHarness captures the handler's log lines with level, ids and attempt",
          "[testing]") {
    StepHarness h([](loom::StepContext& ctx) -> Json {
        ctx.log("starting");
        ctx.log(loom::LogLevel::warn, "slow");
        throw loom::RetryableError("gave up");
    });
    auto r = h.run_id("r1").step_id("s1").attempt(2).run();
    CHECK(r.error_kind == ErrorKind::retryable);   // logs survive the throw
    REQUIRE(r.logs.size() == 2);
    CHECK(r.logs[0].level == loom::LogLevel::info);
    CHECK(r.logs[0].message == "starting");
    CHECK(r.logs[1].level == loom::LogLevel::warn);
    CHECK(r.logs[1].message == "slow");
    for (const auto& line : r.logs) {
        CHECK(line.run_id == "r1");
        CHECK(line.step_id == "s1");
        CHECK(line.attempt == 2);
    }
    CHECK(h.run().logs.size() == 2);   // each run has its own
}

TEST_CASE("StepHarness deadline: seen by ctx.deadline(), cancels once the clock passes it",
          "[testing]") {
    FakeClock clock;
    const auto at = clock.now() + 10s;
    Seen seen;
    auto h = observing(seen);
    h.clock(clock).deadline(at);

    REQUIRE(h.run().ok());
    CHECK(seen.deadline == at);
    CHECK_FALSE(seen.cancelled);

    clock.advance(9999ms);
    h.run();
    CHECK_FALSE(seen.cancelled);
    clock.advance(1ms);   // exactly at the deadline: over
    h.run();
    CHECK(seen.cancelled);
}

TEST_CASE("StepHarness timeout: counted from the clock when run() starts, earlier wins",
          "[testing]") {
    FakeClock clock;
    Seen seen;
    auto h = observing(seen);
    h.clock(clock).timeout(30s);
    clock.advance(1h);   // before run(): the timeout starts with the attempt
    h.run();
    CHECK(seen.deadline == clock.now() + 30s);
    CHECK_FALSE(seen.cancelled);

    h.deadline(clock.now() + 10s);   // the run's deadline comes first
    h.run();
    CHECK(seen.deadline == clock.now() + 10s);
    h.deadline(clock.now() + 1h);    // the timeout comes first
    h.run();
    CHECK(seen.deadline == clock.now() + 30s);
}

TEST_CASE("a handler notices the FakeClock passing its deadline while it runs", "[testing]") {
    FakeClock clock;
    std::atomic<bool> started{false};
    StepHarness h([&](loom::StepContext& ctx) -> Json {
        started = true;
        const auto real_limit = std::chrono::steady_clock::now() + 10s;
        while (!ctx.cancelled()) {
            if (std::chrono::steady_clock::now() > real_limit) throw loom::FatalError("not cancelled");
            std::this_thread::sleep_for(1ms);
        }
        throw loom::RetryableError("deadline passed");
    });
    h.clock(clock).timeout(5min);
    std::thread advancer([&] {
        eventually([&] { return started.load(); });
        clock.advance(5min);
    });
    auto r = h.run();
    advancer.join();
    CHECK(r.error_kind == ErrorKind::retryable);
    CHECK(r.error == "deadline passed");
}

TEST_CASE("StepHarness cancelled(): the run's cancel flag, set before run()", "[testing]") {
    Seen seen;
    auto h = observing(seen);
    h.cancelled(true).run();
    CHECK(seen.cancelled);
    h.run();
    CHECK(seen.cancelled);   // stays set
    h.cancelled(false).run();
    CHECK_FALSE(seen.cancelled);
}

TEST_CASE("StepHarness::cancel() from another thread reaches a running handler", "[testing]") {
    std::atomic<bool> started{false};
    StepHarness h([&](loom::StepContext& ctx) -> Json {
        started = true;
        const auto real_limit = std::chrono::steady_clock::now() + 10s;
        while (!ctx.cancelled()) {
            if (std::chrono::steady_clock::now() > real_limit) return "never cancelled";
            std::this_thread::sleep_for(1ms);
        }
        return "noticed";
    });
    std::thread canceller([&] {
        eventually([&] { return started.load(); });
        h.cancel();
    });
    auto r = h.run();
    canceller.join();
    CHECK(r.ok());
    CHECK(r.output == "noticed");
}
