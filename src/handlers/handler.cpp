// StepContext accessors and the handler registry.
#include <loom/error.hpp>
#include <loom/handler.hpp>

#include <mutex>
#include <ostream>

#include <fmt/format.h>

#include "handlers/builtins.hpp"
#include "handlers/invoke.hpp"

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

StepContext::StepContext(detail::StepContextParams params) : params_(std::move(params)) {}

const Json& StepContext::input() const {
    if (params_.resolve_input) {
        params_.input = params_.resolve_input();   // a throw leaves it to throw again
        params_.resolve_input = nullptr;
    }
    return params_.input;
}

const Json* StepContext::find_input(const std::string& key) const {
    const Json& in = input();
    if (!in.is_object()) return nullptr;
    auto it = in.find(key);
    return it == in.end() ? nullptr : &*it;
}

const Json* StepContext::find_input(const Json::json_pointer& pointer) const {
    // Walked by hand: nlohmann's contains() and at() throw for a token that is
    // not an array index, and at() for an index past the end.
    if (pointer.empty()) return &input();
    const Json* parent = find_input(pointer.parent_pointer());
    if (!parent) return nullptr;
    const std::string& token = pointer.back();
    if (parent->is_object()) {
        auto it = parent->find(token);
        return it == parent->end() ? nullptr : &*it;
    }
    // RFC 6901 array indexes: digits, no leading zero.
    if (!parent->is_array() || token.empty() || token.size() > 9 ||
        token.find_first_not_of("0123456789") != std::string::npos || (token.size() > 1 && token[0] == '0'))
        return nullptr;
    const std::size_t index = std::stoul(token);
    return index < parent->size() ? &(*parent)[index] : nullptr;
}

namespace {

// "run r1, step \"resize\", element 3" (", compensation" for an undo).
std::string attempt_of(const StepContext& ctx) {
    std::string text = fmt::format("run {}, step \"{}\"", ctx.run_id(), ctx.step_id());
    if (ctx.item_index()) text += fmt::format(", element {}", *ctx.item_index());
    if (ctx.compensating()) text += ", compensation";
    return text;
}

// "\"qty\"" or "/items/0/qty".
std::string named(const std::string& key, const Json::json_pointer* pointer) {
    if (!pointer) return Json(key).dump(-1, ' ', false, Json::error_handler_t::replace);
    return pointer->empty() ? "the input" : pointer->to_string();
}

// "a string", "the integer 300", "null": the JSON type, and a number's value.
std::string described(const Json& value) {
    if (value.is_number_integer()) return "the integer " + value.dump();
    if (value.is_number()) return "the number " + value.dump();
    if (value.is_null()) return "null";
    return (value.is_array() || value.is_object() ? "an " : "a ") + std::string(value.type_name());
}

}  // namespace

void StepContext::missing_input(const std::string& key, const Json::json_pointer* pointer) const {
    const Json& in = input();
    std::string what;
    if (pointer) what = "nothing at " + named(key, pointer) + " in the input";
    else if (in.is_object()) what = "no key " + named(key, pointer) + " in the input";
    else what = "no key " + named(key, pointer) + ": the input is " + described(in) + ", not an object";
    throw InputError(error_id::input_missing, attempt_of(*this) + ": " + what);
}

void StepContext::wrong_input_type(const std::string& key, const Json::json_pointer* pointer,
                                   const Json& value, const std::string& expected) const {
    throw InputError(error_id::input_type, fmt::format("{}: {} is {}, expected {}", attempt_of(*this),
                                                    named(key, pointer), described(value), expected));
}

std::string StepContext::idempotency_key() const {
    std::string key = params_.run_id + "/" + params_.step_id;
    if (params_.item) key += "[" + std::to_string(*params_.item) + "]";
    if (params_.compensating) key += "/compensate";
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
    const Clock& clock = params_.clock ? *params_.clock : SystemClock::instance();
    params_.log_sink(LogRecord{level, params_.run_id, params_.step_id, params_.attempt, std::string(message),
                               params_.item, clock.now()},
                     ++params_.lines_logged);
}

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::none: return "none";
    case ErrorKind::retryable: return "retryable";
    case ErrorKind::fatal: return "fatal";
    case ErrorKind::other: return "other";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& out, ErrorKind kind) { return out << to_string(kind); }

namespace detail {

Outcome invoke(StepHandler& handler, StepContext& ctx) {
    Outcome result;
    auto fail = [&result](ErrorKind kind, std::string text) {
        result.kind = kind;
        // An empty error would read as success downstream.
        result.error = text.empty() ? "exception without a message" : std::move(text);
    };
    try {
        result.output = handler.run(ctx);
        result.suspended = ctx.suspended();
    } catch (const FatalError& e) {
        fail(ErrorKind::fatal, e.what());
    } catch (const RetryableError& e) {
        fail(ErrorKind::retryable, e.what());
    } catch (const InvalidArgument& e) {   // an InputError, or the same ids thrown by hand
        const bool input = e.id() == error_id::input_missing || e.id() == error_id::input_type;
        fail(input ? ErrorKind::fatal : ErrorKind::other, e.what());
    } catch (const Json::type_error& e) {
        fail(ErrorKind::fatal, e.what());   // the input is not what the handler reads
    } catch (const Json::out_of_range& e) {
        fail(ErrorKind::fatal, e.what());
    } catch (const std::exception& e) {
        fail(ErrorKind::other, e.what());
    } catch (...) {
        fail(ErrorKind::other, "unknown exception (not derived from std::exception)");
    }
    return result;
}

}  // namespace detail

void HandlerRegistry::add(std::string name, std::shared_ptr<StepHandler> handler) {
    if (name.empty()) throw InvalidArgument(error_id::handler_bad_name, "handler name is empty");
    if (detail::is_reserved_handler(name))
        throw InvalidArgument(error_id::handler_reserved,
                              "handler name \"" + name + "\" is reserved for a built-in step type");
    if (!handler)
        throw InvalidArgument(error_id::handler_null, "handler \"" + name + "\" is null");
    std::unique_lock lock(mutex_);
    handlers_[std::move(name)] = std::move(handler);
}

void HandlerRegistry::add(std::string name, Function function) {
    if (!function && !name.empty() && !detail::is_reserved_handler(name))
        throw InvalidArgument(error_id::handler_null, "handler \"" + name + "\" is null");
    add(std::move(name), std::make_shared<FunctionHandler>(std::move(function)));
}

std::shared_ptr<StepHandler> HandlerRegistry::find(std::string_view name) const {
    std::shared_lock lock(mutex_);
    auto it = handlers_.find(name);
    return it == handlers_.end() ? nullptr : it->second;
}

}  // namespace loom
