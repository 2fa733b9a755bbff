// What the executor's workers run: one step (or element, compensation, child
// run action) of one run. Internal.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/thread_pool.hpp"

namespace loom::detail {

struct RunState;

/// One step of one run to execute; a task without a run asks a worker to
/// commit what is pending (see Executor's group commit).
struct Task {
    enum class Kind : std::uint8_t {
        step,          // run an attempt of the step
        compensate,    // run the step's compensation
        start_child,   // start the step's child run (a sub-workflow)
        child_done,    // the step's child run is final: finish the step
        item,          // run an attempt of one element of a for_each step
        cancel_child,  // the run stopped: cancel the step's child run
    };
    std::shared_ptr<RunState> run;
    std::uint32_t step = 0;
    Kind kind = Kind::step;
    int priority = 0;         // the run's: higher is taken first
    std::uint32_t item = 0;   // Kind::item: the element's index
};

using WorkerPool = ThreadPool<Task>;

}  // namespace loom::detail
