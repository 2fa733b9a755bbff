// WorkflowHarness: loom/testing.hpp. A whole workflow on a MemoryStore and a
// FakeClock, its handlers mocked per step through a private registry, its
// commits failed on demand by a StoreWrapper, its clock moved by watching the
// store for the next thing due.
#include <loom/error.hpp>
#include <loom/testing.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <set>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "engine/executor_impl.hpp"
#include "handlers/builtins.hpp"
#include "handlers/invoke.hpp"
#include "model/plan.hpp"

namespace loom::testing {
namespace {

using std::chrono::milliseconds;

/// Fails commit number `countdown` from when it is armed, and every commit
/// after it: a process that died at that commit commits nothing more.
class CrashingStore final : public StoreWrapper {
public:
    using StoreWrapper::StoreWrapper;

    void commit(const Batch& batch) override {
        std::lock_guard guard(mutex_);
        if (!dead_ && countdown_ > 0 && --countdown_ == 0) {
            dead_ = true;
            died_at_ = commits_ + 1;
        }
        if (dead_)
            throw StoreError(error_id::testing_crash,
                             fmt::format("commit {} failed: WorkflowHarness simulates a crash before it "
                                         "(crash_at); recover() resumes the runs",
                                         died_at_));
        target().commit(batch);
        ++commits_;
    }

    void arm(std::size_t n) {
        std::lock_guard guard(mutex_);
        countdown_ = n;
    }
    /// Back to life, nothing armed.
    void revive() {
        std::lock_guard guard(mutex_);
        dead_ = false;
        countdown_ = 0;
    }
    bool dead() const {
        std::lock_guard guard(mutex_);
        return dead_;
    }
    std::size_t commits() const {
        std::lock_guard guard(mutex_);
        return commits_;
    }

private:
    mutable std::mutex mutex_;
    std::size_t commits_ = 0;     // guarded by mutex_; successful commits
    std::size_t countdown_ = 0;   // guarded by mutex_; 0: nothing armed
    bool dead_ = false;           // guarded by mutex_
    std::size_t died_at_ = 0;     // guarded by mutex_; the commit that failed first
};

[[noreturn]] void throw_crashed() {
    throw StoreError(error_id::testing_crash,
                     "the executor crashed at the commit crash_at() chose; recover() resumes its runs");
}

[[noreturn]] void bad_count(const char* what, long long n) {
    throw InvalidArgument(error_id::testing_bad_count,
                          fmt::format("{}: {} is not a valid count", what, n));
}

}  // namespace

struct WorkflowHarness::Impl final : detail::ChildStandIn {
    /// What mock(), fail() and hang() set for a step.
    struct Mock {
        std::optional<Json> output;
        HandlerRegistry::Function function;
        int fail_first = 0;
        std::string fail_message;
        bool fail_fatal = false;
        int hang_first = 0;
    };
    /// One step of the workflow or of an added one: its real handler and its mock.
    struct StepEntry {
        const Workflow* workflow = nullptr;
        const Step* step = nullptr;
        std::string key;                     // "step", or "workflow/step" in an added workflow
        std::shared_ptr<StepHandler> real;   // from the host's registry; null: none
        bool builtin = false;                // run by the executor ("sleep")
        Mock mock;                           // guarded by Impl::mutex_
        int calls = 0;                       // guarded by Impl::mutex_
    };
    /// An attempt hang() holds: it waits for `deadline` (none: only a cancel).
    struct Hang {
        RunId run;
        std::size_t step = 0;
        int attempt = 0;
        std::optional<TimePoint> deadline;
        std::optional<std::uint32_t> item;   // an element of a for_each
        bool is(const StepContext& ctx, std::size_t s) const {
            return run == ctx.run_id() && step == s && attempt == ctx.attempt() && item == ctx.item_index();
        }
    };
    /// What handlers are doing, as look() sees it.
    struct Activity {
        std::vector<Hang> hangs;
        std::map<std::pair<RunId, std::size_t>, int> in_flight;   // calls running, by (run, step)
    };
    /// What the harness's runs are waiting for.
    struct Outlook {
        bool busy = false;                 // something happens without the clock moving
        std::optional<TimePoint> next;     // the earliest wake-up still to come
    };

    Impl(Workflow wf, const HandlerRegistry* handlers, HarnessOptions opts);
    ~Impl() override;

    WorkflowHarness& add_workflow(WorkflowHarness& self, Workflow wf, const HandlerRegistry* handlers);
    /// Makes entries for the steps of `wf` (the harness's, or an added one).
    void add_steps(const Workflow& wf, const HandlerRegistry* handlers);
    /// The entry of step `step_id` ("step" or "workflow/step"). Throws
    /// InvalidArgument "[loom.testing.unknown_step]".
    std::size_t index_of(std::string_view step_id) const;
    /// The entry of step `i` of `wf`; mutex_ held.
    std::size_t entry_of(const Workflow& wf, std::size_t i) const;
    /// The workflow of a run of this harness; null if it is none of its.
    const Workflow* workflow_of(const RunId& run);
    /// ChildStandIn: a mocked "workflow:NAME" step runs no child run.
    bool covers(const Workflow& workflow, std::uint32_t step) const override;
    std::pair<Json, std::string> outcome(const RunId& run, const Workflow& workflow, std::uint32_t step,
                                         const Json& input) override;
    /// index_of() for a step a mock may replace.
    std::size_t mockable(std::string_view step_id) const;
    Json dispatch(StepContext& ctx);
    [[noreturn]] void hang(StepContext& ctx, std::size_t step);
    /// True once the store shows the attempt ended (or the run over).
    bool given_up(const StepContext& ctx);
    void start_executor();
    void stop_executor();
    /// A restart: stops the executor (its in-flight handlers finish), calls
    /// `stopped`, clears any crash, and resumes the store's unfinished runs
    /// with a new executor.
    std::vector<RunId> restart(const std::function<void()>& stopped);
    Outlook look();
    /// False (the run is busy) if something is due now; else notes what is to come.
    /// A run of a sub-workflow step is looked at with its parent.
    bool look_at(const RunInfo& run, const Activity& activity, TimePoint now, Outlook& out);
    /// look_at() for a for_each step that runs: its elements are in the store
    /// once they wait, complete or fail; the others are pending or running.
    bool fan_out_quiet(const Workflow& wf, const RunInfo& run, std::size_t step, std::size_t entry,
                       const Activity& activity, const std::function<bool(TimePoint)>& to_come) const;
    /// Waits until the runs are quiet, the executor has crashed, or the run
    /// `settling` (may be null) is final; returns the last outlook.
    Outlook wait_quiet(const RunId* settling);
    std::map<std::string, int, std::less<>> calls_of(const RunId& id) const;

    const Workflow workflow_;
    const HarnessOptions options_;

    mutable std::mutex mutex_;
    std::deque<Workflow> added_;                             // add_workflow(); guarded by mutex_
    /// Workflow name -> where its entries begin in steps_; guarded by mutex_.
    std::map<std::string, std::size_t, std::less<>> first_entry_;
    std::map<std::string, std::size_t, std::less<>> index_;  // StepEntry::key -> steps_ index; guarded by mutex_
    std::map<RunId, const Workflow*> run_workflows_;         // workflow_of()'s answers; guarded by mutex_
    std::deque<StepEntry> steps_;                            // guarded by mutex_ (entries stay put)
    std::map<std::pair<RunId, std::size_t>, int> run_calls_; // guarded by mutex_
    std::vector<Hang> hangs_;                                // guarded by mutex_
    std::map<std::pair<RunId, std::size_t>, int> in_flight_; // calls running; guarded by mutex_
    std::atomic<bool> stopping_{false};   // the executor is being destroyed: hangs return

    /// Runs the current executor has and that were not seen final. Test thread only.
    std::set<RunId> live_;

    FakeClock clock_;
    MemoryStore store_;
    CrashingStore crashing_{store_};
    HandlerRegistry registry_;            // a dispatcher per handler name
    std::unique_ptr<Executor> executor_;  // last: uses all of the above
};

WorkflowHarness::Impl::Impl(Workflow wf, const HandlerRegistry* handlers, HarnessOptions opts)
    : workflow_(std::move(wf)), options_(opts), clock_(opts.start) {
    add_steps(workflow_, handlers);
    start_executor();
}

void WorkflowHarness::Impl::add_steps(const Workflow& wf, const HandlerRegistry* handlers) {
    std::lock_guard guard(mutex_);
    const bool added = &wf != &workflow_;
    first_entry_[wf.name()] = steps_.size();
    const auto& steps = wf.steps();
    for (std::size_t i = 0; i < steps.size(); ++i) {
        auto& entry = steps_.emplace_back();
        entry.workflow = &wf;
        entry.step = &steps[i];
        entry.key = added ? wf.name() + "/" + steps[i].id : steps[i].id;
        index_[entry.key] = steps_.size() - 1;
        const std::string& name = steps[i].handler;
        entry.builtin = detail::builtin_handler(name) != nullptr;
        if (detail::is_reserved_handler(name)) continue;   // the executor's, or no one's
        if (handlers) entry.real = handlers->find(name);
        // One dispatcher per name, shared by the steps using it: it picks the
        // step's mock or real handler by the run's workflow and ctx.step_id().
        if (!registry_.contains(name))
            registry_.add(name, [this](StepContext& ctx) { return dispatch(ctx); });
    }
    // Compensations are not mocked: they run the host's handlers as they are.
    for (const auto& step : steps) {
        if (!step.compensate || !handlers) continue;
        const std::string& name = step.compensate->handler;
        if (detail::is_reserved_handler(name) || registry_.contains(name)) continue;
        if (auto real = handlers->find(name)) registry_.add(name, std::move(real));
    }
}

WorkflowHarness::Impl::~Impl() { stop_executor(); }

void WorkflowHarness::Impl::start_executor() {
    ExecutorOptions options;
    options.threads = options_.threads;
    options.observer = options_.observer;
    options.clock = &clock_;
    options.delivery_poll = milliseconds(0);   // no other process shares its store
    executor_ = std::make_unique<Executor>(crashing_, registry_, options);
    detail::ExecutorAccess::set_child_stand_in(*executor_, this);
    executor_->add_workflow(workflow_);
    std::lock_guard guard(mutex_);
    for (const Workflow& added : added_) executor_->add_workflow(added);
}

void WorkflowHarness::Impl::stop_executor() {
    stopping_ = true;
    executor_.reset();   // waits for in-flight handlers; hang() sees stopping_
    stopping_ = false;
    live_.clear();
}

std::vector<RunId> WorkflowHarness::Impl::restart(const std::function<void()>& stopped) {
    stop_executor();
    if (stopped) stopped();
    crashing_.revive();
    start_executor();
    auto resumed = executor_->recover();
    live_.insert(resumed.begin(), resumed.end());
    return resumed;
}

std::size_t WorkflowHarness::Impl::index_of(std::string_view step_id) const {
    std::lock_guard guard(mutex_);
    auto it = index_.find(step_id);
    if (it == index_.end())
        throw InvalidArgument(error_id::testing_unknown_step,
                              step_id.find('/') == std::string_view::npos
                                  ? fmt::format("workflow \"{}\" has no step \"{}\"", workflow_.name(), step_id)
                                  : fmt::format("no step \"{}\": name a step of a workflow given to "
                                                "add_workflow() as \"workflow/step\"",
                                                step_id));
    return it->second;
}

std::size_t WorkflowHarness::Impl::entry_of(const Workflow& wf, std::size_t i) const {
    return first_entry_.at(wf.name()) + i;
}

const Workflow* WorkflowHarness::Impl::workflow_of(const RunId& run) {
    {
        std::lock_guard guard(mutex_);
        auto it = run_workflows_.find(run);
        if (it != run_workflows_.end()) return it->second;
    }
    const auto stored = store_.load_run(run);   // once per run, outside the lock
    std::lock_guard guard(mutex_);
    if (!stored) return nullptr;
    const Workflow* wf = nullptr;
    if (stored->workflow_name == workflow_.name()) wf = &workflow_;
    for (const Workflow& added : added_)
        if (added.name() == stored->workflow_name) wf = &added;
    return run_workflows_[run] = wf;
}

std::size_t WorkflowHarness::Impl::mockable(std::string_view step_id) const {
    const std::size_t i = index_of(step_id);
    std::unique_lock guard(mutex_);
    const std::string name = steps_[i].step->handler;
    guard.unlock();
    if (detail::is_reserved_handler(name) && detail::builtin_kind(name) != detail::StepKind::child)
        throw InvalidArgument(error_id::testing_not_mockable,
                              fmt::format("step \"{}\" is of the built-in type \"{}\", which cannot be "
                                          "mocked{}",
                                          step_id, name,
                                          name == "sleep"  ? "; move the clock to end its wait"
                                          : name == "wait" ? "; send its signal with executor().signal()"
                                                           : ""));
    return i;
}

Json WorkflowHarness::Impl::dispatch(StepContext& ctx) {
    const Workflow* wf = workflow_of(ctx.run_id());
    const StepEntry* entry = nullptr;
    Mock mock;   // a copy: a test may change the mock while this attempt runs
    std::pair<RunId, std::size_t> key{ctx.run_id(), 0};
    {
        std::lock_guard guard(mutex_);
        const Step* step = wf ? wf->find_step(ctx.step_id()) : nullptr;
        if (!step)   // only the harness's workflows run here; kept for safety
            throw FatalError("WorkflowHarness: run " + ctx.run_id() + " has no step \"" + ctx.step_id() +
                             "\" in the harness's workflows");
        key.second = entry_of(*wf, static_cast<std::size_t>(step - wf->steps().data()));
        entry = &steps_[key.second];
        ++steps_[key.second].calls;
        ++run_calls_[key];
        ++in_flight_[key];
        mock = entry->mock;
    }
    struct Leave {
        Impl& impl;
        const std::pair<RunId, std::size_t>& key;
        ~Leave() {
            std::lock_guard guard(impl.mutex_);
            if (--impl.in_flight_[key] == 0) impl.in_flight_.erase(key);
        }
    } leave{*this, key};
    const int attempt = ctx.attempt();
    if (attempt <= mock.hang_first) hang(ctx, key.second);
    if (attempt <= mock.fail_first) {
        if (mock.fail_fatal) throw FatalError(mock.fail_message);
        throw RetryableError(mock.fail_message);
    }
    if (mock.function) return mock.function(ctx);
    if (mock.output) return *mock.output;
    if (entry->real) return entry->real->run(ctx);
    // start() refuses such a step; a run recovered from the store may still have one.
    throw FatalError("WorkflowHarness: step \"" + ctx.step_id() + "\" has neither a handler nor a mock");
}

bool WorkflowHarness::Impl::covers(const Workflow& workflow, std::uint32_t step) const {
    std::lock_guard guard(mutex_);
    auto first = first_entry_.find(workflow.name());
    if (first == first_entry_.end()) return false;
    const Mock& mock = steps_[first->second + step].mock;
    return mock.output || mock.function || mock.fail_first > 0;
}

std::pair<Json, std::string> WorkflowHarness::Impl::outcome(const RunId& run, const Workflow& workflow,
                                                           std::uint32_t step, const Json& input) {
    Mock mock;
    {
        std::lock_guard guard(mutex_);
        const std::size_t i = entry_of(workflow, step);
        ++steps_[i].calls;
        ++run_calls_[{run, i}];
        mock = steps_[i].mock;
    }
    // A sub-workflow step has one attempt: its child run, here the mock.
    if (mock.fail_first > 0) return {nullptr, mock.fail_message};
    if (mock.output) return {*mock.output, ""};
    detail::StepContextParams params;
    params.input = input;
    params.run_id = run;
    params.step_id = workflow.steps()[step].id;
    params.clock = &clock_;
    StepContext ctx = detail::ContextAccess::make(std::move(params));
    try {
        return {mock.function(ctx), ""};
    } catch (const std::exception& e) {
        return {nullptr, e.what()};
    }
}

void WorkflowHarness::Impl::hang(StepContext& ctx, std::size_t step) {
    {
        std::lock_guard guard(mutex_);
        hangs_.push_back(Hang{ctx.run_id(), step, ctx.attempt(), ctx.deadline(), ctx.item_index()});
    }
    auto pause = [] { std::this_thread::sleep_for(milliseconds(1)); };
    while (!ctx.cancelled() && !stopping_) pause();
    // Past its deadline the attempt is given up by a timer of the executor
    // (its timeout, the run's deadline); a stuck handler returns, if ever,
    // after that, so that its result is discarded. Returning first would race
    // the timer (see the [!mayfail] test of a late result in the tests).
    if (ctx.deadline() && clock_.now() >= *ctx.deadline()) {
        while (!stopping_ && !crashing_.dead() && !given_up(ctx)) pause();
    }
    {
        std::lock_guard guard(mutex_);
        auto it = std::find_if(hangs_.begin(), hangs_.end(), [&](const Hang& h) { return h.is(ctx, step); });
        if (it != hangs_.end()) hangs_.erase(it);
    }
    throw RetryableError("hung until cancelled (WorkflowHarness::hang)");
}

bool WorkflowHarness::Impl::given_up(const StepContext& ctx) {
    const auto run = store_.load_run(ctx.run_id());
    if (!run || is_final(run->status)) return true;
    const StepInfo* step = run->step(ctx.step_id());
    if (step && ctx.item_index() && step->status == StepStatus::running) {
        // An element: given up once the store has its attempt's end.
        for (const ItemInfo& item : step->items)
            if (item.index == *ctx.item_index()) return item.attempts >= ctx.attempt();
        return false;
    }
    return !step || (step->attempts >= ctx.attempt() && step->status != StepStatus::ready &&
                     step->status != StepStatus::running);
}

bool WorkflowHarness::Impl::look_at(const RunInfo& run, const Activity& activity,
                                    TimePoint now, Outlook& out) {
    const Workflow* wf = workflow_of(run.id);
    if (!wf)
        throw InvalidArgument(error_id::testing_unknown_workflow,
                              fmt::format("run {} is of workflow \"{}\", which the harness does not know; "
                                          "give it to add_workflow()",
                                          run.id, run.workflow_name));
    std::size_t first;
    {
        std::lock_guard guard(mutex_);
        first = entry_of(*wf, 0);
    }
    const auto& hangs = activity.hangs;
    // A wake-up still to come is noted; one already due means the executor
    // has work to do (or is doing it) before the clock may move.
    auto to_come = [&](TimePoint at) {
        if (at <= now) return false;
        if (!out.next || at < *out.next) out.next = at;
        return true;
    };
    if (auto limit = wf->deadline())
        if (!to_come(run.created_at + *limit)) return false;
    if (run.paused) return true;   // nothing starts until resume()
    for (std::size_t i = 0; i < run.steps.size(); ++i) {
        const StepInfo& s = run.steps[i];
        switch (s.status) {
            case StepStatus::waiting:
                if (s.wake_at && *s.wake_at > now) {
                    to_come(*s.wake_at);
                    break;
                }
                // Due: its next attempt may be running already; the store
                // hears of an attempt's start only with a later commit.
                [[fallthrough]];
            case StepStatus::ready:
            case StepStatus::running: {
                if (detail::kind_of(*wf, i) == detail::StepKind::for_each && s.status == StepStatus::running) {
                    if (!fan_out_quiet(*wf, run, i, first + i, activity, to_come)) return false;
                    break;
                }
                // Quiet only while hang() holds the current attempt.
                const int current = s.status == StepStatus::running ? s.attempts : s.attempts + 1;
                auto held = std::find_if(hangs.begin(), hangs.end(), [&](const Hang& h) {
                    return h.run == run.id && h.step == first + i && h.attempt >= current;
                });
                if (held == hangs.end()) return false;
                if (held->deadline && !to_come(*held->deadline)) return false;
                break;
            }
            case StepStatus::suspended: {
                if (detail::kind_of(*wf, i) == detail::StepKind::child) {
                    // Its child run is looked at as part of this one; until it
                    // exists (or once it is final) the executor has work to do.
                    const auto child = store_.load_run(run.id + "." + s.step_id);
                    if (!child || is_final(child->status) || !look_at(*child, activity, now, out)) return false;
                    break;
                }
                // A wait for a signal or a completion, until its timeout if it has one.
                if (s.wake_at && !to_come(*s.wake_at)) return false;
                break;
            }
            case StepStatus::compensating:
                // Its undo is due or running, unless it waits for a retry.
                if (!s.wake_at || !to_come(*s.wake_at)) return false;
                break;
            default:
                break;
        }
    }
    return true;
}

bool WorkflowHarness::Impl::fan_out_quiet(const Workflow& wf, const RunInfo& run, std::size_t step,
                                          std::size_t entry, const Activity& activity,
                                          const std::function<bool(TimePoint)>& to_come) const {
    std::set<std::uint32_t> held;   // elements whose running attempt a hang() holds
    for (const Hang& h : activity.hangs) {
        if (h.run != run.id || h.step != entry || !h.item) continue;
        if (h.deadline && !to_come(*h.deadline)) return false;
        held.insert(*h.item);
    }
    auto calls = activity.in_flight.find({run.id, entry});
    if (calls != activity.in_flight.end() && static_cast<std::size_t>(calls->second) > held.size())
        return false;   // a call that returns by itself
    std::size_t done = 0, waiting = 0;
    bool failed = false;
    for (const ItemInfo& item : run.steps[step].items) {
        if (held.count(item.index)) continue;
        if (item.status == StepStatus::completed || item.status == StepStatus::failed) {
            ++done;
            failed |= item.status == StepStatus::failed;
        } else if (item.status == StepStatus::waiting) {
            if (!item.wake_at || !to_come(*item.wake_at)) return false;   // due: about to run
            ++waiting;
        }
    }
    if (failed) return true;   // nothing new starts; the step fails once the rest is over
    std::size_t n = 0;
    try {
        n = detail::resolve_for_each(wf, static_cast<std::uint32_t>(step), run.input,
                                     detail::steps_of(run.steps))
                .size();
    } catch (const std::exception&) {
        return false;   // the step fails as soon as it is recorded
    }
    // The rest are pending or ready: they start unless max_parallel is taken
    // by elements that wait for a retry or hang.
    if (n <= done + waiting + held.size()) return true;
    const auto limit = wf.steps()[step].max_parallel;
    return limit && waiting + held.size() >= *limit;
}

WorkflowHarness::Impl::Outlook WorkflowHarness::Impl::look() {
    Outlook out;
    Activity activity;
    {
        std::lock_guard guard(mutex_);
        activity.hangs = hangs_;
        activity.in_flight = in_flight_;
    }
    const TimePoint now = clock_.now();
    for (auto it = live_.begin(); it != live_.end();) {
        auto run = store_.load_run(*it);
        if (!run || is_final(run->status)) {
            it = live_.erase(it);
            continue;
        }
        if (!look_at(*run, activity, now, out)) {
            out.busy = true;
            return out;
        }
        ++it;
    }
    return out;
}

WorkflowHarness::Impl::Outlook WorkflowHarness::Impl::wait_quiet(const RunId* settling) {
    // Busy for long with nothing committed: a handler that does not return.
    std::size_t commits = crashing_.commits();
    auto since = std::chrono::steady_clock::now();
    for (;;) {
        if (crashing_.dead()) return Outlook{};   // nothing more lands
        Outlook out = look();
        if (!out.busy) return out;
        if (settling) {
            if (auto run = store_.load_run(*settling); run && is_final(run->status)) return out;
        }
        const auto real_now = std::chrono::steady_clock::now();
        if (crashing_.commits() != commits) {
            commits = crashing_.commits();
            since = real_now;
        } else if (real_now - since > options_.busy_limit) {
            throw Stalled(error_id::testing_busy,
                          fmt::format("a run of workflow \"{}\" has been busy for {} ms of real time "
                                      "with nothing committed: a handler does not return (mock one "
                                      "that waits for ctx.cancelled() with hang(), or move clock() "
                                      "yourself)",
                                      workflow_.name(), options_.busy_limit.count()));
        }
        std::this_thread::sleep_for(milliseconds(1));
    }
}

std::map<std::string, int, std::less<>> WorkflowHarness::Impl::calls_of(const RunId& id) const {
    std::map<std::string, int, std::less<>> calls;
    std::lock_guard guard(mutex_);
    for (std::size_t i = 0; i < workflow_.steps().size(); ++i) {   // the harness's workflow: first
        auto it = run_calls_.find({id, i});
        calls[steps_[i].key] = it == run_calls_.end() ? 0 : it->second;
    }
    return calls;
}

// --- public ---

WorkflowHarness::WorkflowHarness(Workflow workflow, HarnessOptions options)
    : impl_(std::make_unique<Impl>(std::move(workflow), nullptr, options)) {}

WorkflowHarness::WorkflowHarness(Workflow workflow, const HandlerRegistry& handlers,
                                 HarnessOptions options)
    : impl_(std::make_unique<Impl>(std::move(workflow), &handlers, options)) {}

WorkflowHarness::~WorkflowHarness() = default;

WorkflowHarness& WorkflowHarness::mock(std::string_view step_id, Json output) {
    const std::size_t i = impl_->mockable(step_id);
    std::lock_guard guard(impl_->mutex_);
    impl_->steps_[i].mock.output = std::move(output);
    impl_->steps_[i].mock.function = nullptr;
    return *this;
}

WorkflowHarness& WorkflowHarness::mock(std::string_view step_id, HandlerRegistry::Function function) {
    const std::size_t i = impl_->mockable(step_id);
    if (!function)
        throw InvalidArgument(error_id::handler_null,
                              fmt::format("WorkflowHarness::mock: the function for step \"{}\" is null", step_id));
    std::lock_guard guard(impl_->mutex_);
    impl_->steps_[i].mock.function = std::move(function);
    impl_->steps_[i].mock.output.reset();
    return *this;
}

WorkflowHarness& WorkflowHarness::fail(std::string_view step_id, int first_n_attempts,
                                       std::string message, bool fatal) {
    const std::size_t i = impl_->mockable(step_id);
    if (first_n_attempts < 0) bad_count("WorkflowHarness::fail", first_n_attempts);
    std::lock_guard guard(impl_->mutex_);
    auto& mock = impl_->steps_[i].mock;
    mock.fail_first = first_n_attempts;
    mock.fail_message = std::move(message);
    mock.fail_fatal = fatal;
    return *this;
}

WorkflowHarness& WorkflowHarness::hang(std::string_view step_id, int first_n_attempts) {
    const std::size_t i = impl_->mockable(step_id);
    if (first_n_attempts < 0) bad_count("WorkflowHarness::hang", first_n_attempts);
    std::lock_guard guard(impl_->mutex_);
    if (impl_->steps_[i].builtin)   // mockable: a "workflow:" step
        throw InvalidArgument(error_id::testing_not_mockable,
                              fmt::format("step \"{}\" runs a sub-workflow, which cannot hang: it has no "
                                          "attempt to time out; mock its outcome or fail() it",
                                          step_id));
    impl_->steps_[i].mock.hang_first = first_n_attempts;
    return *this;
}

WorkflowHarness& WorkflowHarness::add_workflow(Workflow workflow) { return impl_->add_workflow(*this, std::move(workflow), nullptr); }

WorkflowHarness& WorkflowHarness::add_workflow(Workflow workflow, const HandlerRegistry& handlers) {
    return impl_->add_workflow(*this, std::move(workflow), &handlers);
}

WorkflowHarness& WorkflowHarness::Impl::add_workflow(WorkflowHarness& self, Workflow wf,
                                                     const HandlerRegistry* handlers) {
    {
        std::lock_guard guard(mutex_);
        if (first_entry_.count(wf.name()))
            throw Conflict(error_id::testing_workflow_added,
                           fmt::format("the harness has workflow \"{}\" already", wf.name()));
    }
    executor_->add_workflow(wf);   // first: if it throws, nothing has changed
    const Workflow* added;
    {
        std::lock_guard guard(mutex_);
        added = &added_.emplace_back(std::move(wf));
    }
    add_steps(*added, handlers);
    return self;
}

RunId WorkflowHarness::start(const Json& input) {
    {
        std::lock_guard guard(impl_->mutex_);
        for (const auto& entry : impl_->steps_) {
            if (entry.builtin || entry.real || entry.mock.output || entry.mock.function) continue;
            throw NotFound(error_id::handler_unknown,
                           fmt::format("workflow \"{}\" step \"{}\" uses handler \"{}\", which is "
                                       "neither registered nor mocked",
                                       entry.workflow->name(), entry.step->id, entry.step->handler));
        }
    }
    RunId id = impl_->executor_->start(impl_->workflow_.name(), input);
    impl_->live_.insert(id);
    return id;
}

RunInfo WorkflowHarness::run(const Json& input) { return settle(start(input)); }

RunInfo WorkflowHarness::settle(const RunId& id, TimePoint::duration max_advance) {
    const TimePoint limit = impl_->clock_.now() + max_advance;
    impl_->live_.insert(id);   // also a run started through executor()
    for (;;) {
        if (auto run = impl_->executor_->wait_for(id, milliseconds(0))) return *run;
        if (impl_->crashing_.dead()) throw_crashed();
        const Impl::Outlook out = impl_->wait_quiet(&id);
        if (auto run = impl_->store_.load_run(id); run && is_final(run->status))
            return impl_->executor_->wait(id);   // returns once the executor is done with it
        if (impl_->crashing_.dead()) continue;   // reported above, or by wait_for as abandoned
        if (!out.next) {
            std::string unfinished;
            const RunInfo run = impl_->executor_->get_run(id);
            for (const auto& s : run.steps) {
                if (s.status == StepStatus::completed || s.status == StepStatus::failed ||
                    s.status == StepStatus::skipped)
                    continue;
                unfinished += fmt::format("{}\"{}\" {}", unfinished.empty() ? "" : ", ", s.step_id,
                                          to_string(s.status));
            }
            throw Stalled(error_id::testing_stalled,
                          fmt::format("run {} cannot end however far the clock moves: nothing is due "
                                      "(unfinished steps: {}); a hang() without a timeout or deadline "
                                      "waits for ever",
                                      id, unfinished));
        }
        if (*out.next > limit)
            throw Stalled(error_id::testing_time_limit,
                          fmt::format("run {} is not over within {} ms of fake time: its next wake-up "
                                      "is later",
                                      id, std::chrono::duration_cast<milliseconds>(max_advance).count()));
        if (*out.next > impl_->clock_.now()) impl_->clock_.set(*out.next);
    }
}

RunInfo WorkflowHarness::wait(const RunId& id) {
    impl_->live_.insert(id);
    return impl_->executor_->wait(id);
}

void WorkflowHarness::advance(TimePoint::duration by) {
    if (by < TimePoint::duration::zero()) impl_->clock_.advance(by);   // throws
    impl_->wait_quiet(nullptr);
    impl_->clock_.advance(by);
}

void WorkflowHarness::crash_at(std::size_t n) {
    if (n == 0) bad_count("WorkflowHarness::crash_at", 0);
    impl_->crashing_.arm(n);
}

bool WorkflowHarness::crashed() const { return impl_->crashing_.dead(); }

std::size_t WorkflowHarness::commit_count() const { return impl_->crashing_.commits(); }

std::vector<RunId> WorkflowHarness::recover() { return impl_->restart(nullptr); }

std::size_t WorkflowHarness::commits_of_a_clean_run(const Json& input) {
    const std::size_t before = commit_count();
    run(input);
    return commit_count() - before;
}

std::size_t WorkflowHarness::check_every_crash_point(
    const Json& input, const std::function<void(const CrashTrial&)>& checker) {
    if (crashed())
        throw Conflict(error_id::testing_crashed,
                       "check_every_crash_point: the harness has crashed; recover() first");
    std::size_t clean_commits = commit_count();
    const RunInfo clean = run(input);
    clean_commits = commit_count() - clean_commits;
    for (std::size_t n = 1;; ++n) {
        CrashTrial trial;
        trial.crash_at = n;
        trial.clean = clean;
        crash_at(n);
        RunId id;
        try {
            id = start(input);
            trial.run = settle(id);
        } catch (const StoreError&) {
            if (!crashed()) throw;
        }
        trial.crashed = crashed();
        if (trial.crashed) {
            impl_->restart([&] {   // the dead executor's handlers are done; nothing runs
                if (id.empty()) return;
                trial.at_crash = impl_->store_.load_run(id);
                trial.calls_before = impl_->calls_of(id);
            });
            if (id.empty()) id = start(input);   // the host's start() threw: it starts again
            trial.run = settle(id);
            trial.calls_after = impl_->calls_of(id);
            for (auto& [step, count] : trial.calls_after) count -= trial.calls_before[step];
        } else {
            impl_->crashing_.revive();   // disarm: the run took fewer commits
            trial.calls_before = impl_->calls_of(id);
            trial.calls_after = trial.calls_before;
            for (auto& [step, count] : trial.calls_after) count = 0;
        }
        checker(trial);
        if (!trial.crashed && n >= clean_commits) return n;
    }
}

int WorkflowHarness::calls(std::string_view step_id) const {
    const std::size_t i = impl_->index_of(step_id);
    std::lock_guard guard(impl_->mutex_);
    return impl_->steps_[i].calls;
}

int WorkflowHarness::calls(const RunId& id, std::string_view step_id) const {
    const std::size_t i = impl_->index_of(step_id);
    std::lock_guard guard(impl_->mutex_);
    auto it = impl_->run_calls_.find({id, i});
    return it == impl_->run_calls_.end() ? 0 : it->second;
}

FakeClock& WorkflowHarness::clock() noexcept { return impl_->clock_; }
MemoryStore& WorkflowHarness::store() noexcept { return impl_->store_; }
Executor& WorkflowHarness::executor() noexcept { return *impl_->executor_; }
const Workflow& WorkflowHarness::workflow() const noexcept { return impl_->workflow_; }

}  // namespace loom::testing
