// Replays, with the normal compiler, every input the definition fuzzer starts
// from (tests/fuzz/corpus/definition/) and every crash it has found
// (tests/fuzz/regressions/), through the fuzzer's own check; plus hostile inputs
// too big to keep as files, generated here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/definition_check.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs_in(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file() && entry.path().filename() != "README.md")
            files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("every seed and every saved fuzzer crash passes the definition check", "[fuzz]") {
    const fs::path root = LOOM_FUZZ_DIR;
    std::size_t seeds = 0, valid = 0;
    for (const char* dir : {"corpus/definition", "regressions"}) {
        for (const fs::path& file : inputs_in(root / dir)) {
            INFO(file.string());
            const auto result = loom::fuzz::check_definition(read_bytes(file));
            CAPTURE(result.problem);
            CHECK(result.problem.empty());
            if (std::string(dir) == "corpus/definition") {
                ++seeds;
                // The seeds are named for what they should do.
                const bool loads = result.error_id.empty();
                CHECK(loads == (file.filename().string().rfind("valid_", 0) == 0));
                valid += loads;
            }
        }
    }
    CHECK(seeds >= 12);
    CHECK(valid >= 4);
}

TEST_CASE("hostile nesting is refused with an error, not a crash", "[fuzz]") {
    const std::size_t million = 1'000'000;
    const std::string opens(million, '[');
    const std::vector<std::string> inputs{
        opens,
        // Balanced, and still under the 1 MiB size limit: the depth bound refuses it.
        std::string(million / 2, '[') + std::string(million / 2, ']'),
        std::string(million, '{'),
        "{\"a\":" + std::string(million / 2, '{'),
        R"({"name": "wf", "version": 1, "steps": [{"id": "a", "handler": "h", "input": )" + opens,
    };
    for (const std::string& input : inputs) {
        INFO(input.substr(0, 80));
        const auto result = loom::fuzz::check_definition(input);
        CHECK(result.problem.empty());
        CHECK(result.error_id == "loom.definition.too_deep");
    }
}
