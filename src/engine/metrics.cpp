// Metrics: per-workflow counters and histograms kept under one mutex, each
// event a map lookup and a few additions; the exposition is formatted from a
// copy, outside the lock. The text format is Prometheus's 0.0.4.
#include <loom/metrics.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <ostream>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include <loom/events.hpp>

#include "runtime/mutex.hpp"

namespace loom {
namespace {

// Step attempts and queue waits: a millisecond (the resolution of the times
// stores record) to an hour.
constexpr double kStepSeconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1,     2.5,    5,     10,   30,    60,   300, 1800, 3600};
constexpr double kCommitSeconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
constexpr double kCommitRows[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

/// Counts per bucket (not cumulative: text() adds them up), the sum and the count.
class Histogram {
public:
    template <std::size_t N>
    explicit Histogram(const double (&bounds)[N]) : bounds_(bounds), counts_(N + 1) {}

    void observe(double value) {
        const auto* end = bounds_ + counts_.size() - 1;
        ++counts_[static_cast<std::size_t>(std::lower_bound(bounds_, end, value) - bounds_)];   // le is inclusive
        sum_ += value;
    }
    /// `name`_bucket (cumulative, ending with +Inf), _sum and _count lines;
    /// `labels` are the series' other labels ("" or `workflow="w",`).
    void write(std::string& out, std::string_view name, std::string_view labels) const {
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            total += counts_[i];
            if (i + 1 < counts_.size())
                fmt::format_to(std::back_inserter(out), "{}_bucket{{{}le=\"{}\"}} {}\n", name, labels, bounds_[i], total);
            else
                fmt::format_to(std::back_inserter(out), "{}_bucket{{{}le=\"+Inf\"}} {}\n", name, labels, total);
        }
        const std::string_view bare = labels.empty() ? labels : labels.substr(0, labels.size() - 1);   // no ','
        const char* open = bare.empty() ? "" : "{";
        const char* close = bare.empty() ? "" : "}";
        fmt::format_to(std::back_inserter(out), "{}_sum{}{}{} {}\n", name, open, bare, close, sum_);
        fmt::format_to(std::back_inserter(out), "{}_count{}{}{} {}\n", name, open, bare, close, total);
    }

private:
    const double* bounds_;
    std::vector<std::uint64_t> counts_;   // the last: above every bound
    double sum_ = 0;
};

/// What loom_steps_total{status} counts: a step's (not an element's) outcome,
/// by the kind of its history entry.
constexpr std::array<std::string_view, 6> kStepOutcomes = {"completed", "failed",      "skipped",
                                                           "cancelled", "compensated", "compensation_failed"};
std::optional<std::size_t> step_outcome(std::string_view kind) {
    static constexpr std::array<const char*, 6> kinds = {event::step_completed,  event::step_failed,
                                                         event::step_skipped,    event::step_cancelled,
                                                         event::step_compensated, event::step_compensation_failed};
    for (std::size_t i = 0; i < kinds.size(); ++i)
        if (kind == kinds[i]) return i;
    return std::nullopt;
}

constexpr std::array<RunStatus, 3> kRunOutcomes = {RunStatus::completed, RunStatus::failed, RunStatus::cancelled};

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

/// A label value as the text format wants it: backslash, double quote and
/// newline escaped.
std::string escape(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

struct Metrics::Impl {
    struct Workflow {
        std::uint64_t runs_started = 0;
        std::array<std::uint64_t, kRunOutcomes.size()> runs_finished{};
        std::uint64_t runs_given_up = 0;
        std::int64_t runs_live = 0;
        std::array<std::uint64_t, kStepOutcomes.size()> steps{};
        std::uint64_t retries = 0;
        Histogram step_seconds{kStepSeconds};
        Histogram queue_seconds{kStepSeconds};
    };
    struct Figures {
        std::unordered_map<std::string, Workflow> workflows;
        Histogram commit_seconds{kCommitSeconds};
        Histogram commit_rows{kCommitRows};
    };

    Workflow& of(const std::string& name) LOOM_REQUIRES(mutex) {
        auto it = figures.workflows.find(name);
        if (it == figures.workflows.end()) it = figures.workflows.emplace(name, Workflow{}).first;
        return it->second;
    }

    detail::Mutex mutex;
    Figures figures LOOM_GUARDED_BY(mutex);
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::on_run_changed(const RunChange& change) {
    detail::MutexLock lock(impl_->mutex);
    auto& w = impl_->of(change.workflow_name);
    if (change.live) {
        ++w.runs_started;
        ++w.runs_live;
        return;
    }
    --w.runs_live;
    const auto outcome = std::find(kRunOutcomes.begin(), kRunOutcomes.end(), change.status);
    if (outcome == kRunOutcomes.end())
        ++w.runs_given_up;   // still running, elsewhere
    else
        ++w.runs_finished[static_cast<std::size_t>(outcome - kRunOutcomes.begin())];
}

void Metrics::on_step_changed(const StepEvent& e) {
    // An attempt that ended (the step's or an element's): its duration and queue wait.
    const bool retrying = e.kind == event::step_retrying || e.kind == event::element_retrying;
    const bool ended = retrying || e.kind == event::step_completed || e.kind == event::step_failed ||
                       e.kind == event::element_completed || e.kind == event::element_failed;
    const auto outcome = e.item ? std::nullopt : step_outcome(e.kind);
    if (!ended && !outcome) return;   // sleeping, suspended, compensating, ...
    std::optional<double> took, queued;
    if (ended && e.started_at) {
        if (!e.item && e.finished_at && *e.finished_at >= *e.started_at) took = seconds(*e.finished_at - *e.started_at);
        if (e.ready_at && *e.started_at >= *e.ready_at) queued = seconds(*e.started_at - *e.ready_at);
    }

    detail::MutexLock lock(impl_->mutex);
    auto& w = impl_->of(e.workflow_name);
    if (outcome) ++w.steps[*outcome];
    if (retrying) ++w.retries;
    if (took) w.step_seconds.observe(*took);
    if (queued) w.queue_seconds.observe(*queued);
}

void Metrics::on_commit(const CommitStats& stats) {
    const double rows = static_cast<double>(stats.runs + stats.steps + stats.items + stats.events);
    detail::MutexLock lock(impl_->mutex);
    impl_->figures.commit_seconds.observe(seconds(stats.duration));
    impl_->figures.commit_rows.observe(rows);
}

std::string Metrics::text() const {
    Impl::Figures figures;
    {
        detail::MutexLock lock(impl_->mutex);
        figures = impl_->figures;
    }
    // Workflows in name order, each with its label ready: `workflow="w",`.
    std::map<std::string, const Impl::Workflow*> workflows;
    for (const auto& [name, w] : figures.workflows) workflows.emplace("workflow=\"" + escape(name) + "\",", &w);
    auto bare = [](const std::string& labels) { return std::string_view(labels).substr(0, labels.size() - 1); };

    std::string out;
    auto counter = [&](std::string_view name, std::string_view help, auto value) {
        header(out, name, "counter", help);
        for (const auto& [labels, w] : workflows)
            fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, bare(labels), value(*w));
    };
    counter("loom_runs_started_total",
            "Runs that began running in this executor: started, recovered, claimed, adopted or reopened.",
            [](const Impl::Workflow& w) { return w.runs_started; });

    header(out, "loom_runs_finished_total", "counter", "Runs that ended in this executor, by outcome.");
    for (const auto& [labels, w] : workflows)
        for (std::size_t i = 0; i < kRunOutcomes.size(); ++i)
            fmt::format_to(std::back_inserter(out), "loom_runs_finished_total{{{}status=\"{}\"}} {}\n", labels,
                           to_string(kRunOutcomes[i]), w->runs_finished[i]);

    counter("loom_runs_given_up_total",
            "Runs this executor stopped running unfinished (a failed commit, a lost lease), for recover() or "
            "another executor to resume.",
            [](const Impl::Workflow& w) { return w.runs_given_up; });

    header(out, "loom_runs_live", "gauge", "Runs running in this executor now.");
    for (const auto& [labels, w] : workflows)
        fmt::format_to(std::back_inserter(out), "loom_runs_live{{{}}} {}\n", bare(labels), w->runs_live);

    header(out, "loom_steps_total", "counter",
           "Steps (not for_each elements) that reached an outcome, by outcome.");
    for (const auto& [labels, w] : workflows)
        for (std::size_t i = 0; i < kStepOutcomes.size(); ++i)
            fmt::format_to(std::back_inserter(out), "loom_steps_total{{{}status=\"{}\"}} {}\n", labels,
                           kStepOutcomes[i], w->steps[i]);

    counter("loom_step_retries_total",
            "Failed attempts of steps and for_each elements that wait for a retry.",
            [](const Impl::Workflow& w) { return w.retries; });

    header(out, "loom_step_duration_seconds", "histogram",
           "Step attempts that ended (completed, failed, or failed to be retried), from start to end.");
    for (const auto& [labels, w] : workflows) w->step_seconds.write(out, "loom_step_duration_seconds", labels);

    header(out, "loom_step_queue_wait_seconds", "histogram",
           "Attempts of steps and for_each elements, from ready (dependencies settled, retry due) to started.");
    for (const auto& [labels, w] : workflows) w->queue_seconds.write(out, "loom_step_queue_wait_seconds", labels);

    header(out, "loom_commit_duration_seconds", "histogram", "Group commits: the store's time for each.");
    figures.commit_seconds.write(out, "loom_commit_duration_seconds", "");

    header(out, "loom_commit_rows", "histogram",
           "Group commits: rows each wrote (runs, steps, for_each elements and history entries).");
    figures.commit_rows.write(out, "loom_commit_rows", "");
    return out;
}

void Metrics::write(std::ostream& out) const { out << text(); }

}  // namespace loom
