// FakeClock and StepHarness: loom/testing.hpp.
#include <loom/error.hpp>
#include <loom/testing.hpp>

#include <algorithm>
#include <exception>
#include <ostream>
#include "handlers/invoke.hpp"

namespace loom::testing {

TimePoint FakeClock::now() const {
    std::lock_guard guard(mutex_);
    return now_;
}

void FakeClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                           TimePoint at) const {
    {
        std::lock_guard guard(mutex_);
        if (now_ >= at) return;
        waiting_.push_back(&cv);   // from here on, advance() notifies cv
    }
    // One bounded round, then back to the caller, who re-checks its state (the
    // Clock contract allows spurious wake-ups). Looping here instead would lose
    // the caller's own notify when it lands as the round times out: wait_for
    // then reports a timeout although it consumed the notify. And advance()
    // notifies without the caller's mutex, so its notify can come between the
    // check above and the sleep, and be lost: the bound caps what that costs.
    cv.wait_for(lock, kMaxWakeDelay);
    std::lock_guard guard(mutex_);
    // Unregistered before returning: the caller may then destroy cv, and
    // advance() must no longer touch it.
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &cv));
}

void FakeClock::advance(TimePoint::duration by) {
    if (by < TimePoint::duration::zero())
        throw InvalidArgument(error_id::testing_clock_backwards,
                              "FakeClock::advance by a negative duration; time never goes back");
    std::lock_guard guard(mutex_);
    move_to(now_ + by);
}

void FakeClock::set(TimePoint to) {
    std::lock_guard guard(mutex_);
    if (to < now_)
        throw InvalidArgument(error_id::testing_clock_backwards,
                              "FakeClock::set to an earlier time than now(); time never goes back");
    move_to(to);
}

void FakeClock::move_to(TimePoint to) {
    now_ = to;
    // Under mutex_: a waiter unregisters under it before its cv may be destroyed.
    for (auto* cv : waiting_) cv->notify_all();
}

std::size_t FakeClock::waiters() const {
    std::lock_guard guard(mutex_);
    return waiting_.size();
}

namespace {

std::shared_ptr<StepHandler> registered(const HandlerRegistry& registry, std::string_view name) {
    auto handler = registry.find(name);
    if (!handler)
        throw NotFound(error_id::handler_unknown,
                       "handler \"" + std::string(name) + "\" is not registered");
    return handler;
}

}  // namespace

StepHarness::StepHarness(std::shared_ptr<StepHandler> handler) : handler_(std::move(handler)) {
    if (!handler_) throw InvalidArgument(error_id::handler_null, "StepHarness: the handler is null");
}

StepHarness::StepHarness(HandlerRegistry::Function function) {
    if (!function) throw InvalidArgument(error_id::handler_null, "StepHarness: the function is null");
    // The registry is what wraps a function into a StepHandler.
    HandlerRegistry registry;
    registry.add("harness", std::move(function));
    handler_ = registry.find("harness");
}

StepHarness::StepHarness(const HandlerRegistry& registry, std::string_view name)
    : StepHarness(registered(registry, name)) {}

StepHarness& StepHarness::input(Json value) {
    input_ = std::move(value);
    return *this;
}

StepHarness& StepHarness::attempt(int number) {
    if (number < 1)
        throw InvalidArgument(error_id::testing_bad_attempt,
                              "attempt " + std::to_string(number) + ": attempts count from 1");
    attempt_ = number;
    return *this;
}

StepHarness& StepHarness::run_id(RunId id) {
    run_id_ = std::move(id);
    return *this;
}

StepHarness& StepHarness::step_id(std::string id) {
    step_id_ = std::move(id);
    return *this;
}

StepHarness& StepHarness::compensating(bool value) {
    compensating_ = value;
    return *this;
}

StepHarness& StepHarness::deadline(TimePoint at) {
    deadline_ = at;
    return *this;
}

StepHarness& StepHarness::timeout(TimePoint::duration after) {
    timeout_ = after;
    return *this;
}

StepHarness& StepHarness::cancelled(bool value) {
    cancel_flag_.store(value, std::memory_order_relaxed);
    return *this;
}

StepHarness& StepHarness::clock(const Clock& clock) {
    clock_ = &clock;
    return *this;
}

StepResult StepHarness::run() const {
    StepResult result;
    std::mutex logs_mutex;   // a handler may log from threads of its own
    const Clock& clock = clock_ ? *clock_ : SystemClock::instance();

    detail::StepContextParams params;
    params.input = input_;
    params.attempt = attempt_;
    params.run_id = run_id_;
    params.step_id = step_id_;
    params.compensating = compensating_;
    params.cancel_flag = &cancel_flag_;
    params.deadline = deadline_;
    if (timeout_) {
        const TimePoint by_timeout = clock.now() + *timeout_;
        if (!params.deadline || by_timeout < *params.deadline) params.deadline = by_timeout;
    }
    params.clock = &clock;
    params.log_sink = [&](const LogRecord& record, int /*line*/) {
        std::lock_guard guard(logs_mutex);
        result.logs.push_back(record);
    };
    StepContext ctx = detail::ContextAccess::make(std::move(params));

    // Classified exactly as the executor classifies an attempt's outcome.
    auto outcome = detail::invoke(*handler_, ctx);
    result.output = std::move(outcome.output);
    result.error = std::move(outcome.error);
    result.error_kind = outcome.kind;
    return result;
}

}  // namespace loom::testing
