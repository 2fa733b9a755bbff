// Step types the executor provides itself: "sleep" (a durable timer) and
// "wait" (until a signal; see signals.cpp). Their
// names are reserved: HandlerRegistry refuses them. Internal.
#pragma once

#include <memory>
#include <string_view>

#include <loom/handler.hpp>
#include <loom/json.hpp>
#include <loom/run.hpp>

namespace loom::detail {

/// True for names hosts may not register ("sleep", "wait", "workflow:...").
bool is_reserved_handler(std::string_view name) noexcept;

/// The built-in handler of that name, or nullptr.
std::shared_ptr<StepHandler> builtin_handler(std::string_view name);

/// When a sleep step with this (resolved) input wakes: {"ms": N} after `now`,
/// {"until_ms": N} milliseconds since the epoch, or {"until":
/// "YYYY-MM-DDTHH:MM:SS[.fff]Z"}. Throws InvalidArgument "[loom.sleep.input]".
TimePoint sleep_until(const Json& input, TimePoint now);

}  // namespace loom::detail
