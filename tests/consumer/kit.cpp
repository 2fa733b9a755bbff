// A host's unit test of one step, as the README's testing chapter teaches: it
// links loom::testing as well as loom::loom (the app beside it links only
// loom::loom). Exit status 0 means the handler's output came back through
// StepHarness and the version the headers state is the package's.
#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include <cstdio>
#include <cstring>

int main() {
    loom::testing::StepHarness harness([](loom::StepContext& ctx) -> loom::Json {
        return ctx.input<int>("value") * 2;
    });
    const auto result = harness.input({{"value", 21}}).run();
    const bool ok = result.output == 42 && std::strcmp(loom::kVersion, LOOM_EXPECTED_VERSION) == 0;
    std::printf("StepHarness: output %s, loom %s -> %s\n", result.output.dump().c_str(), loom::kVersion,
                ok ? "ok" : "UNEXPECTED");
    return ok ? 0 : 1;
}
