// loom::Json is nlohmann::json: the type of every input, output and definition.
// It is part of Loom's public API, so hosts use it without an extra dependency.
#pragma once

#include <nlohmann/json.hpp>

namespace loom {

using Json = nlohmann::json;

}  // namespace loom
