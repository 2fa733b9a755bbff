// Replays, with the normal compiler, every input the fuzzers start from
// (tests/fuzz/corpus/definition/ and expression/) and every crash they have found
// (tests/fuzz/regressions/ and regressions/expression/), through each fuzzer's own
// check; plus hostile inputs too big to keep as files, generated here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/definition_check.hpp"
#include "fuzz/expression_check.hpp"

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

// Runs `check` on every seed in `corpus` and every file in `regressions` (both
// under tests/fuzz/). Seeds are named for what they should do: valid_* pass, the
// others are refused.
template <class Check>
void replay(const std::string& corpus, const std::string& regressions, const Check& check,
            std::size_t min_seeds, std::size_t min_valid) {
    const fs::path root = LOOM_FUZZ_DIR;
    std::size_t seeds = 0, valid = 0;
    for (const std::string& dir : {corpus, regressions}) {
        for (const fs::path& file : inputs_in(root / dir)) {
            INFO(file.string());
            const auto result = check(read_bytes(file));
            CAPTURE(result.problem);
            CHECK(result.problem.empty());
            if (dir == corpus) {
                ++seeds;
                const bool loads = result.error_id.empty();
                CHECK(loads == (file.filename().string().rfind("valid_", 0) == 0));
                valid += loads;
            }
        }
    }
    CHECK(seeds >= min_seeds);
    CHECK(valid >= min_valid);
}

}  // namespace

TEST_CASE("every seed and every saved fuzzer crash passes the definition check", "[reliability][fuzz]") {
    replay("corpus/definition", "regressions", loom::fuzz::check_definition, 12, 4);
}

TEST_CASE("every seed and every saved fuzzer crash passes the expression check", "[reliability][fuzz]") {
    replay("corpus/expression", "regressions/expression", loom::fuzz::check_expression, 15, 8);
}

TEST_CASE("hostile nesting is refused with an error, not a crash", "[reliability][fuzz]") {
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
        CHECK(result.error_id == loom::error_id::definition_too_deep);
    }
}

TEST_CASE("hostile expressions are refused with an error, not a crash", "[reliability][fuzz]") {
    const std::size_t million = 1'000'000;
    const std::vector<std::string> inputs{
        std::string(million, '('),
        std::string(million, '!'),
        "${" + std::string(million, 'a'),
        "'" + std::string(million, 'x'),
        // Within the length limit: the depth counter refuses them.
        std::string(4096, '('),
        std::string(2048, '!') + std::string(2048, '('),
        std::string(2000, '(') + "true" + std::string(2000, ')'),
    };
    for (const std::string& input : inputs) {
        INFO(input.substr(0, 80));
        const auto result = loom::fuzz::check_expression(input);
        CHECK(result.problem.empty());
        CHECK(result.error_id == loom::error_id::definition_bad_expression);
    }
}
