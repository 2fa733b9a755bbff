// Checks on the JSON values that cross into the store: a run's input and each
// step's output. A value nested deeper than the limit is refused before
// anything copies or serializes it (both recurse, and a deep enough value
// would overflow the stack); then its text must be valid UTF-8 and small enough.
#pragma once

#include <string>

#include <loom/executor.hpp>
#include <loom/json.hpp>

namespace loom::detail {

/// Throws InvalidArgument "[loom.payload.too_deep]", "[loom.payload.too_large]"
/// or "[loom.payload.not_utf8]"; `what` names the value in the message.
void check_payload(const Json& value, const PayloadLimits& limits, const std::string& what);

}  // namespace loom::detail
