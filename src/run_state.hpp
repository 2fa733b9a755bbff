// The executor's in-memory state of one live run: what it needs to schedule
// steps without reading the store. Internal. The store stays the truth: this
// state is rebuilt from it by recover(), and dropped when a commit fails.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <loom/handler.hpp>
#include <loom/run.hpp>
#include <loom/workflow.hpp>

namespace loom::detail {

struct StepSlot {
    StepStatus status = StepStatus::pending;
    int attempts = 0;
    std::uint32_t waiting = 0;   // dependencies not yet completed
    Json output;                 // immutable once status is completed
    std::string error;
    std::optional<TimePoint> started_at;
    std::optional<TimePoint> finished_at;
};

struct RunState {
    RunId id;
    std::shared_ptr<const Workflow> workflow;
    std::vector<std::shared_ptr<StepHandler>> handlers;   // per step, fixed at start
    Json input;
    std::atomic<bool> cancel_flag{false};                 // read by StepContext
    /// Per step: false while a started attempt is not yet in the store. Written
    /// under mutex; read without it by the committer to skip most checks.
    std::vector<std::atomic<bool>> start_written;

    std::mutex mutex;
    std::condition_variable done_cv;
    // All below guarded by mutex.
    std::vector<StepSlot> steps;
    std::size_t completed = 0;       // steps completed
    std::size_t active = 0;          // steps made ready and not yet finished
    bool stopping = false;           // failed or cancelled: start nothing new
    bool cancel_requested = false;
    RunStatus outcome = RunStatus::running;   // the final status once decided
    std::string error;
    bool final_submitted = false;    // the final run write is queued for commit
    bool done = false;               // final write committed, or run abandoned
    bool abandoned = false;          // a commit failed; the store is the truth now
    std::exception_ptr store_error;  // why it was abandoned
};

}  // namespace loom::detail
