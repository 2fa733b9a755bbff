// libFuzzer target for the condition language (src/expression.cpp): every input
// must either be refused by Expression::parse with a well-formed DefinitionError,
// or parse the same way twice and evaluate, under many lookups, to a boolean or a
// loom.when.type InvalidArgument (expression_check.hpp). Anything else aborts,
// and libFuzzer saves the input. Built by LOOM_BUILD_FUZZERS; run by tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "expression_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto result = loom::fuzz::check_expression(
        std::string_view(reinterpret_cast<const char*>(data), size));
    if (!result.problem.empty()) {
        std::fprintf(stderr, "fuzz_expression: %s\n", result.problem.c_str());
        std::abort();
    }
    return 0;
}
