// What test_contention and its child process share: the workflow both run, the
// handler's deterministic output, the ledger line a handler writes, and a store
// wrapper that measures how long callers wait.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace loom::test {

/// A source, three parallel steps and a join: five steps, three commit rounds.
inline Workflow contention_workflow() {
    return WorkflowBuilder("contention", 1)
        .step("src", "work").input({{"origin", "${input.origin}"}, {"i", "${input.i}"}})
        .step("a", "work").after("src")
        .step("b", "work").after("src")
        .step("c", "work").after("src")
        .step("join", "work").after({"a", "b", "c"})
        .build();
}

inline constexpr int contention_step_count() { return 5; }

/// Deterministic, and the same in every process (FNV-1a, not std::hash).
inline Json contention_output(const std::string& step, const Json& input) {
    std::uint64_t h = 14695981039346656037ull;
    for (char c : step + input.dump()) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return Json{{"step", step}, {"hash", h % 1000003}};
}

/// "run step attempt pid": one line per handler call.
inline std::string ledger_line(const StepContext& ctx, long pid) {
    return ctx.run_id() + " " + ctx.step_id() + " " + std::to_string(ctx.attempt()) + " " +
           std::to_string(pid) + "\n";
}

/// Forwards to a store and keeps the longest commit and the longest read its
/// callers waited for (a commit waits for the write lock of other processes).
class TimedStore : public StoreWrapper {
public:
    using StoreWrapper::StoreWrapper;
    void commit(const Batch& batch) override {
        Timer timer(longest_commit_us_);
        StoreWrapper::commit(batch);
    }
    std::optional<RunInfo> load_run(const RunId& id) override {
        Timer timer(longest_read_us_);
        return StoreWrapper::load_run(id);
    }
    std::vector<RunInfo> list_runs(const RunFilter& filter = {}) override {
        Timer timer(longest_read_us_);
        return StoreWrapper::list_runs(filter);
    }
    double longest_commit_ms() const { return static_cast<double>(longest_commit_us_) / 1000; }
    double longest_read_ms() const { return static_cast<double>(longest_read_us_) / 1000; }

private:
    using Clock = std::chrono::steady_clock;
    class Timer {
    public:
        explicit Timer(std::atomic<std::int64_t>& longest) : longest_(longest) {}
        ~Timer() {
            const std::int64_t us =
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0_).count();
            std::int64_t seen = longest_;
            while (us > seen && !longest_.compare_exchange_weak(seen, us)) {
            }
        }
        Timer(const Timer&) = delete;
        Timer& operator=(const Timer&) = delete;

    private:
        std::atomic<std::int64_t>& longest_;
        Clock::time_point t0_ = Clock::now();
    };
    std::atomic<std::int64_t> longest_commit_us_{0};
    std::atomic<std::int64_t> longest_read_us_{0};
};

}  // namespace loom::test
