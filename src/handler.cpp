// StepContext accessors and the handler registry.
#include <loom/error.hpp>
#include <loom/handler.hpp>

#include <mutex>

#include "builtins.hpp"
#include "invoke.hpp"

namespace loom {
namespace {

class FunctionHandler final : public StepHandler {
public:
    explicit FunctionHandler(HandlerRegistry::Function f) : f_(std::move(f)) {}
    Json run(StepContext& ctx) override { return f_(ctx); }

private:
    HandlerRegistry::Function f_;
};

}  // namespace

StepContext::StepContext(Params params) : params_(std::move(params)) {}

const Json& StepContext::input() const {
    if (params_.resolve_input) {
        params_.input = params_.resolve_input();   // a throw leaves it to throw again
        params_.resolve_input = nullptr;
    }
    return params_.input;
}

std::string StepContext::idempotency_key() const {
    std::string key = params_.run_id + "/" + params_.step_id;
    if (params_.item) key += "[" + std::to_string(*params_.item) + "]";
    return key;
}

std::string StepContext::completion_token() const {
    return idempotency_key() + "/" + std::to_string(params_.attempt);
}

bool StepContext::cancelled() const noexcept {
    if (params_.cancel_flag && params_.cancel_flag->load(std::memory_order_relaxed)) return true;
    if (params_.attempt_flag && params_.attempt_flag->load(std::memory_order_relaxed)) return true;
    if (!params_.deadline) return false;
    const Clock& clock = params_.clock ? *params_.clock : SystemClock::instance();
    return clock.now() >= *params_.deadline;
}

void StepContext::log(LogLevel level, std::string_view message) const {
    if (!params_.log_sink) return;
    params_.log_sink(LogRecord{level, params_.run_id, params_.step_id, params_.attempt,
                               std::string(message), params_.item});
}

namespace detail {

Invocation invoke(StepHandler& handler, StepContext& ctx) {
    Invocation result;
    auto fail = [&result](Invocation::Kind kind, std::string text) {
        result.kind = kind;
        // An empty error would read as success downstream.
        result.error = text.empty() ? "exception without a message" : std::move(text);
    };
    try {
        result.output = handler.run(ctx);
        result.suspended = ctx.suspended();
    } catch (const FatalError& e) {
        fail(Invocation::Kind::fatal, e.what());
    } catch (const RetryableError& e) {
        fail(Invocation::Kind::retryable, e.what());
    } catch (const InvalidArgument& e) {
        fail(e.id() == "loom.input.missing" ? Invocation::Kind::fatal : Invocation::Kind::other, e.what());
    } catch (const std::exception& e) {
        fail(Invocation::Kind::other, e.what());
    } catch (...) {
        fail(Invocation::Kind::other, "unknown exception (not derived from std::exception)");
    }
    return result;
}

}  // namespace detail

void HandlerRegistry::add(std::string name, std::shared_ptr<StepHandler> handler) {
    if (name.empty()) throw InvalidArgument("loom.handler.bad_name", "handler name is empty");
    if (detail::is_reserved_handler(name))
        throw InvalidArgument("loom.handler.reserved",
                              "handler name \"" + name + "\" is reserved for a built-in step type");
    if (!handler)
        throw InvalidArgument("loom.handler.null", "handler \"" + name + "\" is null");
    std::unique_lock lock(mutex_);
    handlers_[std::move(name)] = std::move(handler);
}

void HandlerRegistry::add(std::string name, Function function) {
    if (!function && !name.empty() && !detail::is_reserved_handler(name))
        throw InvalidArgument("loom.handler.null", "handler \"" + name + "\" is null");
    add(std::move(name), std::make_shared<FunctionHandler>(std::move(function)));
}

std::shared_ptr<StepHandler> HandlerRegistry::find(std::string_view name) const {
    std::shared_lock lock(mutex_);
    auto it = handlers_.find(name);
    return it == handlers_.end() ? nullptr : it->second;
}

}  // namespace loom
