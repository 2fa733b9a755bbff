// libFuzzer target for Workflow::from_json and validation: every input must
// either be refused with a DefinitionError or load, dump and reload to the same
// canonical JSON and hash (definition_check.hpp). Anything else aborts, and
// libFuzzer saves the input. Built by LOOM_BUILD_FUZZERS; run by tests/fuzz/run.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "definition_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto result = loom::fuzz::check_definition(
        std::string_view(reinterpret_cast<const char*>(data), size));
    if (!result.problem.empty()) {
        std::fprintf(stderr, "fuzz_definition: %s\n", result.problem.c_str());
        std::abort();
    }
    return 0;
}
