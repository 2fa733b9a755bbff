// Step and run transitions: claiming an attempt, calling its handler, and
// deciding what the result means — complete, retry later, skip, settle a
// failure, fail or stop the run. Every decision is made under the run's mutex
// and queued with the writes that record it; nothing acts on it (dispatching
// dependents, arming a retry) before the commit that makes it durable.
#include <algorithm>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "handlers/builtins.hpp"
#include "handlers/invoke.hpp"
#include "model/expression.hpp"
#include "model/model.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"
#include "runtime/failpoint.hpp"

namespace loom {
namespace {

/// `delay` scaled by a random factor in [1 - jitter, 1 + jitter].
std::chrono::milliseconds jittered(std::chrono::milliseconds delay, double jitter) {
    if (jitter <= 0 || delay.count() == 0) return delay;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> factor(1.0 - jitter, 1.0 + jitter);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(delay.count()) * factor(rng)));
}

}  // namespace

Outcome Executor::Impl::timed_out(std::chrono::milliseconds timeout) {
    return Outcome::failure(fmt::format("timed out after {} ms", timeout.count()));
}

TimePoint Executor::Impl::retry_at(const RetryPolicy& retry, int attempt, TimePoint failed_at) {
    return failed_at + jittered(retry.backoff(attempt), retry.jitter);
}

TimePoint Executor::Impl::now() const {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(clock_.now());
}

void Executor::Impl::write_step(RunState& run, std::uint32_t step, Batch& writes) {
    auto& slot = run.steps[step];
    writes.steps.push_back(StepWrite{run.id, run.workflow->steps()[step].id, slot.status, slot.attempts,
                                     slot.output, slot.error, slot.started_at, slot.finished_at, slot.wake_at,
                                     std::exchange(slot.reset_items, false), slot.attempt_base});
}

void Executor::Impl::record_step(RunState& run, std::uint32_t step, Queue& queue, const char* event,
                                 TimePoint at, std::string detail) {
    write_step(run, step, queue.writes());
    if (!event) return;
    const auto& slot = run.steps[step];
    tell(step, std::nullopt, slot, event, detail, queue);
    queue.writes().events.push_back(
        RunEvent{0, run.id, run.workflow->steps()[step].id, event, slot.attempts, std::move(detail), at});
}

void Executor::Impl::tell(std::uint32_t step, std::optional<std::uint32_t> item, const detail::AttemptSlot& slot,
                          const char* kind, const std::string& detail, Queue& queue) {
    // Only a for_each's start gets here (written eagerly): told like no other start.
    if (!options_.observer || slot.status == StepStatus::running) return;
    StepChange& c = queue.effects().changes.emplace_back();
    c.step = step;
    c.item = item;
    c.status = slot.status;
    c.attempt = slot.attempts;
    if (slot.status == StepStatus::completed) c.output = slot.output;
    c.error = slot.error;
    c.started_at = slot.started_at;
    c.finished_at = slot.finished_at;
    c.wake_at = slot.wake_at;
    c.ready_at = slot.ready_at;
    c.kind = kind;
    c.detail = detail;
}

void Executor::Impl::write_start(RunState& run, const Task& task, Batch& writes) {
    if (task.kind == Task::Kind::item) {
        run.steps[task.step].fan->items[task.item].start_written = true;
        write_item(run, task.step, task.item, writes);
    } else {
        write_step(run, task.step, writes);
        record_start(run, task.step, writes);
    }
}

void Executor::Impl::record_start(RunState& run, std::uint32_t step, Batch& writes) {
    if (run.start_written[step].load(std::memory_order_relaxed)) return;
    run.start_written[step].store(true, std::memory_order_release);
    const auto& slot = run.steps[step];
    writes.events.push_back(RunEvent{0, run.id, run.workflow->steps()[step].id, event::step_started,
                                     slot.attempts, "", *slot.started_at});
}

void Executor::Impl::end_run_if_over(RunState& run, Queue& queue) {
    if (run.final_submitted) return;
    if (run.stopping && !run.fans_open.none()) wind_down_fans(run, queue);
    Json output;
    if (run.all_settled() && !run.stopping) {
        run.outcome = RunStatus::completed;
        output = Json::object();
        // A sink that was skipped or failed (under "continue") contributes null.
        for (auto sink : detail::Plan::of(*run.workflow).sinks)
            output[run.workflow->steps()[sink].id] = run.steps[sink].output;
    } else if (!run.stopping || !run.active.none()) {
        return;
    } else if (run.compensate) {
        if (!run.compensation_begun) begin_compensation(run, queue);
        if (!run.compensations.none()) return;
        if (!run.compensation_failures.empty())
            run.error += fmt::format("; compensation failed for step(s) {}",
                                     fmt::join(run.compensation_failures, ", "));
    }
    run.final_submitted = true;
    if (run.deadline_timer) timers_.cancel(run.deadline_timer);
    const auto at = now();
    if (run.outcome != RunStatus::completed) cancel_unfinished(run, queue, at);
    auto& writes = queue.writes();
    writes.runs.push_back(
        RunWrite{run.id, run.outcome, run.cancel_requested, std::move(output), run.error, at, at, false, std::nullopt});
    const char* ended = run.outcome == RunStatus::completed ? event::run_completed
                        : run.outcome == RunStatus::failed  ? event::run_failed
                                                            : event::run_cancelled;
    writes.events.push_back(RunEvent{0, run.id, "", ended, 0, run.error, at});
    queue.effects().run_finished = detail::Effects::Ending{run.outcome, run.error, ended};
}

void Executor::Impl::cancel_unfinished(RunState& run, Queue& queue, TimePoint at) {
    const std::string why = run.outcome == RunStatus::cancelled ? "the run was cancelled" : "the run failed";
    for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
        auto& slot = run.steps[i];
        switch (slot.status) {
            case StepStatus::suspended:
                slot.finished_at = at;   // its attempt ends unanswered
                [[fallthrough]];
            case StepStatus::pending:
            case StepStatus::ready:
            case StepStatus::waiting:
                slot.status = StepStatus::cancelled;
                slot.wake_at.reset();
                record_step(run, i, queue, event::step_cancelled, at, why);
                break;
            default:
                break;
        }
    }
}

void Executor::Impl::stop_run(RunState& run, RunStatus outcome, std::string error) {
    if (run.stopping) return;   // the first reason stands
    // cancel() cancels the children itself, before it returns.
    if (outcome != RunStatus::cancelled) cancel_children(run);
    run.stopping = true;
    run.outcome = outcome;
    run.error = std::move(error);
    // A step waiting to retry is not coming back: its timer finds the run
    // stopping. A ready one is released now, so that the run can end before
    // a worker reaches its task (which then finds it pending): all workers
    // may be held by handlers that ignore ctx.cancelled().
    for (auto& slot : run.steps) {
        if (slot.status == StepStatus::waiting || slot.status == StepStatus::suspended) {
            run.active.remove();
        } else if (slot.status == StepStatus::ready) {
            slot.status = StepStatus::pending;
            run.active.remove();
        }
    }
    // Parked by pause() or by a concurrency limit: dispatched, they find the
    // run stopping and let it end.
    for (auto& task : run.parked) pool_.push(std::move(task));
    run.parked.clear();
    unpark_limited(run);
}

bool Executor::Impl::fail_step(RunState& run, std::uint32_t step, Queue& queue) {
    auto& slot = run.steps[step];
    slot.status = StepStatus::failed;
    slot.wake_at.reset();
    record_step(run, step, queue, event::step_failed, *slot.finished_at, slot.error);
    const OnError policy = run.workflow->on_error_of(step);
    if (policy == OnError::proceed && !run.stopping) {
        run.settled.add();
        return true;
    }
    if (policy == OnError::compensate) run.compensate = true;
    stop_run(run, RunStatus::failed,
             fmt::format("step \"{}\" failed: {}", run.workflow->steps()[step].id, slot.error));
    return false;
}

bool Executor::Impl::admit(RunState& run, std::uint32_t step, Queue& queue, bool write_ready) {
    const auto& def = run.workflow->steps()[step];
    const auto& plan = detail::Plan::of(*run.workflow).steps[step];
    auto& slot = run.steps[step];
    std::string skip_reason;
    if (!def.run_if_skipped) {
        for (auto d : plan.deps) {
            if (run.steps[d].status == StepStatus::skipped) {
                skip_reason = fmt::format("dependency \"{}\" was skipped", run.workflow->steps()[d].id);
                break;
            }
        }
    }
    if (skip_reason.empty() && plan.when) {
        try {
            if (!condition_holds(run, *plan.when))
                skip_reason = fmt::format("condition {} is false", detail::quote(def.when));
        } catch (const std::exception& e) {
            slot.error = e.what();
            slot.finished_at = now();
            return fail_step(run, step, queue);
        }
    }
    if (!skip_reason.empty()) {
        slot.status = StepStatus::skipped;
        slot.finished_at = now();
        run.settled.add();
        record_step(run, step, queue, event::step_skipped, *slot.finished_at, std::move(skip_reason));
        return true;
    }
    switch (plan.kind) {
        case detail::StepKind::wait: return admit_wait(run, step, queue);
        case detail::StepKind::child: return admit_child(run, step, queue);
        case detail::StepKind::for_each: return admit_fan_out(run, step, queue);
        case detail::StepKind::handler:
        case detail::StepKind::sleep: break;
    }
    run.active.add();
    if (plan.kind == detail::StepKind::sleep && slot.attempts == 0 && !slot.wake_at) {
        // The wait comes first and holds no thread; its attempt only completes it.
        try {
            const Json input = detail::resolve_input(*run.workflow, step, run.input, detail::steps_of(run.steps));
            slot.wake_at = detail::sleep_until(input, now());
        } catch (const std::exception& e) {
            run.active.remove();
            slot.error = e.what();
            slot.finished_at = now();
            return fail_step(run, step, queue);
        }
        slot.status = StepStatus::waiting;
        record_step(run, step, queue, event::step_sleeping, now());
        wait_after_commit(slot, queue);
        return false;
    }
    slot.make_ready(now());
    queue.ready(step);
    if (write_ready) write_step(run, step, queue.writes());
    return false;
}

bool Executor::Impl::condition_holds(const RunState& run, const detail::Expression& when) const {
    const auto& refs = when.references();
    std::vector<Json> fields(refs.size());   // status and error are made, not found
    return when.evaluate([&](std::size_t i) LOOM_REQUIRES(run.mutex) -> const Json* {
        const detail::Reference& ref = refs[i];
        if (ref.root == detail::Reference::Root::input) return detail::find_path(run.input, ref.path);
        const auto& slot = run.steps[ref.step];
        switch (ref.field) {
            case detail::Reference::Field::status:
                return &(fields[i] = std::string(to_string(slot.status)));
            case detail::Reference::Field::error:
                return &(fields[i] = slot.error);
            case detail::Reference::Field::output:
                break;
        }
        return detail::find_path(slot.output, ref.path);
    });
}

void Executor::Impl::release_dependents(RunState& run, std::uint32_t step, Queue& queue) {
    // A skipped step settles at once and releases its own dependents: a
    // worklist, not recursion, so a long chain of skips cannot overflow. It
    // stays empty (no allocation) in the common case of no skip.
    std::vector<std::uint32_t> settled;
    for (std::uint32_t s = step;;) {
        for (auto d : detail::Plan::of(*run.workflow).steps[s].dependents) {
            // Only a step still waiting for its dependencies counts them: one
            // that settled before this step ran again (retry() of a step that
            // failed under "continue") stays as it is.
            if (run.steps[d].status != StepStatus::pending) continue;
            if (run.steps[d].deps_left.remove() && !run.stopping && admit(run, d, queue, true))
                settled.push_back(d);
        }
        if (settled.empty()) break;
        s = settled.back();
        settled.pop_back();
    }
}

std::optional<Executor::Impl::Attempt> Executor::Impl::claim(const Task& task) {
    RunState& run = *task.run;
    MutexLock lock(run.mutex);
    if (run.stopping || stopping_) {
        auto& status = run.steps[task.step].status;
        if (status != StepStatus::ready) return std::nullopt;   // released by stop_run
        status = StepStatus::pending;
        run.active.remove();
        if (run.abandoned || stopping_) return std::nullopt;   // abandon_runs takes it off live_
        Queue queue(commits_, task.run);
        end_run_if_over(run, queue);
        queue.release(false);
        return std::nullopt;
    }
    if (run.deadline_at && now() >= *run.deadline_at) {
        // Due before its deadline timer fired (e.g. a retry re-armed by
        // recover()): nothing starts past the deadline. Released here, so
        // that stop_run does not release it again.
        run.steps[task.step].status = StepStatus::pending;
        run.active.remove();
        expire(task.run);
        return std::nullopt;
    }
    if (held_back(run, task)) return std::nullopt;
    Attempt attempt = begin_attempt(task, run.steps[task.step]);
    detail::failpoint("step.claimed");
    return attempt;
}

namespace {
// A running attempt's start reaches the store at most this long (on the
// executor's clock) after it began, plus one commit: what readers see of
// "running" lags by no more. Quicker attempts write it with their result.
constexpr auto kStartFlushDelay = std::chrono::milliseconds(10);
}  // namespace

std::string Executor::Impl::interrupted(int number) {
    return Error::text(error_id::step_interrupted, fmt::format("attempt {} was interrupted: its process stopped while it ran",
                                                                   number));
}

void Executor::Impl::note_start(const Task& task, Attempt& attempt, TimePoint began) {
    RunState& run = *task.run;
    if (task.kind == Task::Kind::item)
        run.steps[task.step].fan->items[task.item].start_written = false;
    else
        run.start_written[task.step].store(false, std::memory_order_relaxed);
    if (attempt.start_commit) {   // exact: queued now, awaited by the caller
        Queue queue(commits_, task.run, attempt.start_commit.get());
        write_start(run, task, queue.writes());
        attempt.must_lead = queue.release(true);
        return;
    }
    if (auto flush_at = commits_.start_unwritten(task, began, kStartFlushDelay))
        timers_.add(*flush_at, [this] { flush_starts(); });
}

bool Executor::Impl::await_start(Attempt& attempt) {
    if (!attempt.start_commit) return true;
    try {
        await_commit(attempt.must_lead, *attempt.start_commit);
        return true;
    } catch (...) {
        return false;   // abandon() has recorded why; the run is the store's again
    }
}

void Executor::Impl::handler_logged(const LogRecord& record, int line) {
    notify([&](Observer& o) { o.on_log(record); });
    if (line > kMaxStoredLogLines + 1) return;
    LogRecord stored = record;
    if (line > kMaxStoredLogLines) {
        stored.level = LogLevel::warn;
        stored.message = fmt::format("this attempt logged more than {} lines; the rest are not stored",
                                     kMaxStoredLogLines);
    } else if (stored.message.size() > kMaxStoredLogBytes) {
        constexpr std::string_view ellipsis = "\xE2\x80\xA6";
        std::size_t cut = kMaxStoredLogBytes - ellipsis.size();
        // Back to the start of a character: never half of one (UTF-8 continuation bytes are 10xxxxxx).
        while (cut > 0 && (static_cast<unsigned char>(stored.message[cut]) & 0xC0) == 0x80) --cut;
        stored.message.resize(cut);
        stored.message += ellipsis;
    }
    if (auto flush_at = commits_.log_unwritten(std::move(stored), kStartFlushDelay))
        timers_.add(*flush_at, [this] { flush_starts(); });
}

void Executor::Impl::flush_starts() {
    std::optional<TimePoint> rearm;
    if (!commits_.starts_due(now(), kStartFlushDelay, rearm)) {
        if (rearm) timers_.add(*rearm, [this] { flush_starts(); });
        return;
    }
    {
        // Something to lead: the leader writes the starts (record_starts).
        Queue queue(commits_, nullptr);
        queue.release(false);
    }
    commit_from_timer();
}

bool Executor::Impl::held_back(RunState& run, const Task& task) {
    if (run.paused) {
        run.parked.push_back(task);   // resume() dispatches it again
        return true;
    }
    return !limits_.take(task);   // dispatched again when a slot frees
}

Executor::Impl::Attempt Executor::Impl::begin_attempt(const Task& task, detail::AttemptSlot& slot) {
    const RunState& run = *task.run;
    in_flight_.enter();
    slot.status = StepStatus::running;
    slot.started_at = now();
    slot.finished_at.reset();
    slot.wake_at.reset();
    ++slot.attempts;
    const auto timeout = run.workflow->timeout_of(task.step);
    // Only an attempt that can time out needs a flag of its own (and its
    // allocation); shutdown reaches the others through the run's flag.
    Attempt attempt{slot.attempts, nullptr, run.deadline_at, nullptr, false};
    if (timeout || run.deadline_at) attempt.flag = std::make_shared<std::atomic<bool>>(false);
    slot.attempt_flag = attempt.flag;
    if (timeout) {
        const TimePoint due = *slot.started_at + *timeout;
        if (!attempt.deadline || due < *attempt.deadline) attempt.deadline = due;
        const auto item = task.kind == Task::Kind::item ? std::optional(task.item) : std::nullopt;
        slot.timeout_timer = timers_.add(due, [this, weak = std::weak_ptr(task.run), step = task.step, item,
                                               number = attempt.number, timeout = *timeout] {
            on_timeout(weak, step, item, number, timeout);
        });
    }
    if (std::exchange(slot.exact, false)) attempt.start_commit = std::make_unique<CommitWaiter>();
    note_start(task, attempt, *slot.started_at);
    return attempt;
}

bool Executor::Impl::accept_outcome(const RunState& run, std::uint32_t step, std::optional<std::uint32_t> item,
                                 detail::AttemptSlot& slot, int number) {
    if (slot.status != StepStatus::running || slot.attempts != number) {
        // Timed out, or given up at the run's deadline: that decision stands.
        report(LogRecord{LogLevel::warn, run.id, run.workflow->steps()[step].id, number,
                         "the attempt returned after it was given up; its result is discarded", item});
        return false;
    }
    if (slot.timeout_timer) timers_.cancel(std::exchange(slot.timeout_timer, 0));
    slot.attempt_flag.reset();
    return true;
}

void Executor::Impl::close_attempt(const RunState& run, std::uint32_t step, detail::AttemptSlot& slot, Outcome& result) {
    slot.finished_at = now();
    // Past its timeout, though the timer has not fired yet: the timeout holds,
    // whichever thread gets here first.
    if (auto timeout = run.workflow->timeout_of(step); timeout && *slot.finished_at - *slot.started_at >= *timeout)
        result = timed_out(*timeout);
}

bool Executor::Impl::wait_to_retry(const RunState& run, std::uint32_t step, detail::AttemptSlot& slot, const Outcome& result,
                                   Queue& queue) {
    const RetryPolicy retry = run.workflow->retry_of(step);
    if (result.fatal() || out_of_attempts(slot, retry) || run.stopping) return false;
    slot.status = StepStatus::waiting;
    slot.wake_at = retry_at(retry, slot.attempts, *slot.finished_at);
    wait_after_commit(slot, queue);
    return true;
}

void Executor::Impl::give_up(detail::AttemptSlot& slot, TimePoint at) {
    if (slot.timeout_timer) timers_.cancel(std::exchange(slot.timeout_timer, 0));
    if (slot.attempt_flag) slot.attempt_flag->store(true);   // the handler sees ctx.cancelled()
    slot.attempt_flag.reset();
    slot.status = StepStatus::failed;
    slot.error = "given up: the run passed its deadline";
    slot.finished_at = at;
}

detail::StepContextParams Executor::Impl::context_params(const RunState& run, std::uint32_t step,
                                                   int attempt) {
    detail::StepContextParams params;
    params.attempt = attempt;
    params.run_id = run.id;
    params.step_id = run.workflow->steps()[step].id;
    params.clock = &clock_;
    params.log_sink = [this](const LogRecord& r, int line) { handler_logged(r, line); };
    return params;
}

Outcome Executor::Impl::call_handler(RunState& run, std::uint32_t step, const Attempt& attempt,
                                     std::optional<std::uint32_t> item) {
    try {
        detail::StepContextParams params = context_params(run, step, attempt.number);
        params.cancel_flag = &run.cancel_flag;
        params.attempt_flag = attempt.flag.get();
        params.deadline = attempt.deadline;
        params.item = item;
        // Resolved when the handler first asks. Dependencies' outputs are
        // immutable once settled, and so is a for_each's array once it began,
        // so no lock is needed, and the value is the same as at the attempt's start.
        // Captures fit std::function's inline buffer (16 bytes): no allocation per attempt.
        constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
        params.resolve_input = [&run, step, index = item.value_or(kNone)] {
            const auto& steps = run.unlocked_steps();
            const auto step_of = detail::steps_of(steps);
            if (index == kNone) return detail::resolve_input(*run.workflow, step, run.input, step_of);
            const detail::Element element{steps[step].fan->elements[index], Json(index)};
            return detail::resolve_input(*run.workflow, step, run.input, step_of, &element);
        };
        StepContext ctx = detail::ContextAccess::make(std::move(params));
        Outcome outcome = detail::invoke(*run.handlers.run[step], ctx);
        // Fail the attempt here, not the commit, if the output cannot be stored.
        if (outcome.ok()) detail::check_payload(outcome.output, options_.payload, "the output");
        return outcome;
    } catch (const std::exception& e) {   // building the context, or the payload check
        return Outcome::failure(e.what());
    }
}

void Executor::Impl::attempt_returned(const std::shared_ptr<RunState>& run_ptr, std::uint32_t step,
                                    int number, Outcome&& result) {
    detail::failpoint("step.finished");
    RunState& run = *run_ptr;
    MutexLock lock(run.mutex);
    auto& slot = run.steps[step];
    if (!accept_outcome(run, step, std::nullopt, slot, number)) return;
    run.active.remove();
    if (run.abandoned) return;   // its result is dropped; abandon_runs takes the run off live_
    if (attempts_cancelled_ && !result.ok()) {
        // Most likely the handler gave up because shutdown set ctx.cancelled():
        // not the step's failure, and not an attempt that counts (unlike one
        // a crash interrupts). recover() runs it again.
        slot.status = StepStatus::ready;
        if (!run.start_written[step].exchange(true, std::memory_order_acq_rel)) {
            --slot.attempts;   // its start never reached the store, and now never will
        } else {
            // Its number is taken (the store refuses to start it twice), but
            // it does not count against the retry policy.
            ++slot.attempt_base;
            Queue queue(commits_, run_ptr);
            record_step(run, step, queue, event::step_stopped, now(), "the executor shut down during the attempt");
            queue.release(false);
        }
        return;
    }
    close_attempt(run, step, slot, result);
    Queue queue(commits_, run_ptr);
    record_start(run, step, queue.writes());
    apply_outcome(run, step, std::move(result), queue);
    end_run_if_over(run, queue);
    queue.release(false);
}

void Executor::Impl::apply_outcome(RunState& run, std::uint32_t step, Outcome&& result, Queue& queue) {
    auto& slot = run.steps[step];
    if (result.ok() && result.suspended) {
        // Handed to an outside system: complete() or fail() with its token
        // finishes the attempt; its timeout, if any, still counts.
        slot.status = StepStatus::suspended;
        if (auto timeout = run.workflow->timeout_of(step)) slot.wake_at = *slot.started_at + *timeout;
        run.active.add();
        record_step(run, step, queue, event::step_suspended, *slot.finished_at);
        // Completed by its token while its handler ran: it resumes at once.
        if (auto it = run.requested.find({step, slot.attempts}); it != run.requested.end()) {
            auto [output, error] = it->second;
            resume(run, step, Outcome::of(std::move(output), std::move(error)), queue);
            return;
        }
        wait_after_commit(slot, queue);
        return;
    }
    if (result.ok()) {
        slot.status = StepStatus::completed;
        slot.output = std::move(result.output);
        slot.error.clear();   // an earlier attempt's
        run.settled.add();
        record_step(run, step, queue, event::step_completed, *slot.finished_at);
        // Dependents become ready in the same transaction that completes this step.
        release_dependents(run, step, queue);
    } else {
        slot.error = std::move(result.error);
        if (wait_to_retry(run, step, slot, result, queue)) {
            run.active.add();   // still the run's business until it settles
            record_step(run, step, queue, event::step_retrying, *slot.finished_at, slot.error);
        } else if (fail_step(run, step, queue)) {
            release_dependents(run, step, queue);
        }
    }
}

void Executor::Impl::arm_timers(const std::shared_ptr<RunState>& run_ptr, std::uint64_t committed) {
    RunState& run = *run_ptr;
    MutexLock lock(run.mutex);
    run.committed_seq = std::max(run.committed_seq, committed);
    if (run.stopping || run.final_submitted) return;
    if (run.deadline_at && !run.deadline_timer)
        run.deadline_timer = timers_.add(*run.deadline_at, [this, weak = std::weak_ptr(run_ptr)] { on_deadline(weak); });
    for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
        auto& slot = run.steps[i];
        if (slot.fan) {
            for (std::uint32_t j = 0; j < slot.fan->next; ++j)
                if (slot.fan->items[j].status == StepStatus::waiting) arm_wait(run_ptr, i, j, slot.fan->items[j]);
        }
        if (slot.status == StepStatus::waiting || slot.status == StepStatus::suspended)
            arm_wait(run_ptr, i, std::nullopt, slot);
    }
}

void Executor::Impl::arm_wait(const std::shared_ptr<RunState>& run, std::uint32_t step,
                              std::optional<std::uint32_t> item, detail::AttemptSlot& slot) {
    // A wait whose own batch is not committed yet is armed by that batch.
    if (!slot.wake_at || slot.armed || slot.wait_seq > run->committed_seq) return;
    slot.armed = true;
    timers_.add(*slot.wake_at, [this, weak = std::weak_ptr(run), step, item, number = slot.attempts,
                                 at = *slot.wake_at] { on_wake(weak, step, item, number, at); });
}

void Executor::Impl::commit_from_timer() {
    // Every worker may be held by a handler that ignores ctx.cancelled() (the
    // reason timeouts and deadlines exist): the timer thread commits itself.
    if (commits_.claim()) lead(nullptr);
}

void Executor::Impl::on_wake(const std::weak_ptr<RunState>& weak, std::uint32_t step,
                             std::optional<std::uint32_t> item, int number, TimePoint at) {
    auto run = weak.lock();
    if (!run) return;
    bool timed_out_now = false;
    {
        MutexLock lock(run->mutex);
        auto& slot = run->steps[step];
        // A timer armed for another wait of the same attempt (a suspended
        // step's timeout, after fail() by token made it wait for a retry)
        // leaves this one alone: its own timer is armed once it is committed.
        auto stale = [at](const auto& s) { return !s.wake_at || *s.wake_at != at; };
        if (item ? stale(slot.fan->items[*item]) : stale(slot)) return;
        if (item) {   // an element's retry
            detail::ItemSlot& element = slot.fan->items[*item];
            element.armed = false;
            if (run->abandoned || run->stopping || element.attempts != number ||
                element.status != StepStatus::waiting)
                return;
            element.make_ready(at);
        } else {
            slot.armed = false;
            if (run->abandoned || run->stopping || slot.attempts != number) return;
            if (slot.status == StepStatus::suspended) {
                // Nothing came in time.
                const auto waited = *slot.wake_at - *slot.started_at;
                const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited);
                Outcome timeout = detail::kind_of(*run->workflow, step) == detail::StepKind::wait
                                     ? Outcome::failure(Error::text(error_id::wait_timeout, fmt::format("no signal {} within {} ms",
                                                                   detail::quote(slot.awaiting), ms.count())),
                                                       /*fatal=*/true)
                                     : timed_out(ms);
                Queue queue(commits_, run);
                resume(*run, step, std::move(timeout), queue);
                end_run_if_over(*run, queue);
                queue.release(false);
                timed_out_now = true;
            } else if (slot.status == StepStatus::waiting) {
                slot.make_ready(at);   // recorded with the attempt's start
            } else {
                return;
            }
        }
    }
    if (timed_out_now) {
        commit_from_timer();   // without the run's mutex: committing takes it
        return;
    }
    detail::failpoint("step.woken");   // a retry or a sleep is due; the store still says waiting
    const int priority = run->priority;
    pool_.push(Task{std::move(run), step, item ? Task::Kind::item : Task::Kind::step, priority, item.value_or(0)});
}

void Executor::Impl::on_timeout(const std::weak_ptr<RunState>& weak, std::uint32_t step,
                                std::optional<std::uint32_t> item, int number, std::chrono::milliseconds timeout) {
    auto run = weak.lock();
    if (!run) return;
    {
        MutexLock lock(run->mutex);
        auto fire = [number](auto& slot) {
            if (slot.status != StepStatus::running || slot.attempts != number) return false;
            slot.timeout_timer = 0;           // firing now
            slot.attempt_flag->store(true);   // the handler sees ctx.cancelled()
            return true;
        };
        auto& slot = run->steps[step];
        if (!(item ? fire(slot.fan->items[*item]) : fire(slot))) return;
    }
    if (item)
        item_returned(Task{run, step, Task::Kind::item, run->priority, *item}, number, timed_out(timeout));
    else
        attempt_returned(run, step, number, timed_out(timeout));
    commit_from_timer();
}

void Executor::Impl::on_deadline(const std::weak_ptr<RunState>& weak) {
    auto run_ptr = weak.lock();
    if (!run_ptr) return;
    RunState& run = *run_ptr;
    {
        MutexLock lock(run.mutex);
        run.deadline_timer = 0;
        expire(run_ptr);
    }
    commit_from_timer();
}

void Executor::Impl::expire(const std::shared_ptr<RunState>& run_ptr) {
    RunState& run = *run_ptr;
    if (run.final_submitted || run.abandoned || run.expired) return;
    run.expired = true;
    {
        const auto limit = run.workflow->deadline()->count();
        run.cancel_flag = true;   // in-flight handlers see ctx.cancelled()
        stop_run(run, RunStatus::failed,
                 Error::text(error_id::run_deadline, fmt::format("the run passed its deadline of {} ms", limit)));
        Queue queue(commits_, run_ptr);
        const auto at = now();
        queue.writes().events.push_back(RunEvent{0, run.id, "", event::run_deadline, 0, run.error, at});
        // A deadline is a hard limit: attempts still running are given up, so
        // the run ends now even if a handler ignores ctx.cancelled().
        for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
            auto& slot = run.steps[i];
            if (slot.status != StepStatus::running) continue;
            if (slot.fan) {
                give_up_items(run, i, queue, at);
                continue;   // settles once nothing of it is busy (wind_down_fans)
            }
            give_up(slot, at);
            record_start(run, i, queue.writes());
            record_step(run, i, queue, event::step_failed, at, slot.error);
            run.active.remove();
        }
        end_run_if_over(run, queue);
        queue.release(false);
    }
}

}  // namespace loom
