// Metrics: what a Prometheus scrape of loom::Metrics shows after real runs —
// exact counters by workflow and outcome, retries, live runs, step duration
// and queue-wait histograms (cumulative buckets), commit figures — and that
// every line of the exposition is well-formed text format 0.0.4.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <loom/loom.hpp>
#include <loom/testing.hpp>

#include "support/fixture.hpp"
#include "support/flaky_store.hpp"
#include "support/sync.hpp"

using namespace std::chrono_literals;
using loom::Json;
using loom::RunStatus;
using loom::test::Fixture;

namespace {

/// The samples of an exposition, by their text before the value
/// (`loom_steps_total{workflow="w",status="completed"}`), in order.
struct Scrape {
    std::vector<std::pair<std::string, double>> samples;
    std::map<std::string, std::string> types;   // metric name -> its # TYPE

    explicit Scrape(const std::string& text) {
        std::istringstream in(text);
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("# TYPE ", 0) == 0) {
                const auto space = line.find(' ', 7);
                types[line.substr(7, space - 7)] = line.substr(space + 1);
            }
            if (line.empty() || line[0] == '#') continue;
            const auto space = line.rfind(' ');
            const std::string value = line.substr(space + 1);
            samples.emplace_back(line.substr(0, space), value == "+Inf" ? 1e300 : std::stod(value));
        }
    }
    /// The value of the series `key`; fails the test if there is none.
    double operator[](const std::string& key) const {
        for (const auto& [k, v] : samples)
            if (k == key) return v;
        FAIL("no sample " << key);
        return 0;
    }
    bool has(const std::string& key) const {
        for (const auto& s : samples)
            if (s.first == key) return true;
        return false;
    }
    /// `name`_bucket's counts of one series, in order, with their le.
    std::vector<std::pair<std::string, double>> buckets(const std::string& name, const std::string& labels) const {
        std::vector<std::pair<std::string, double>> out;
        const std::string prefix = name + "_bucket{" + labels + "le=\"";
        for (const auto& [k, v] : samples)
            if (k.rfind(prefix, 0) == 0) out.emplace_back(k.substr(prefix.size(), k.size() - prefix.size() - 2), v);
        return out;
    }
};

std::string w(const std::string& workflow) { return "workflow=\"" + workflow + "\""; }

/// The cumulative count of the bucket `le` of one series.
double bucket(const Scrape& s, const std::string& name, const std::string& labels, const std::string& le) {
    for (const auto& [bound, count] : s.buckets(name, labels))
        if (bound == le) return count;
    FAIL("no bucket le=" << le << " of " << name << "{" << labels << "}");
    return 0;
}

/// Every histogram series: buckets cumulative (never fewer than the one
/// before), le ascending and ending at +Inf, and +Inf equal to _count.
void check_histograms(const Scrape& s) {
    for (const auto& [name, type] : s.types) {
        if (type != "histogram") continue;
        std::map<std::string, std::vector<std::pair<std::string, double>>> series;   // labels -> buckets
        const std::regex bucket_line(name + R"re(_bucket\{(.*)le="([^"]+)"\})re");
        for (const auto& [k, v] : s.samples) {
            std::smatch m;
            if (std::regex_match(k, m, bucket_line)) series[m[1].str()].emplace_back(m[2].str(), v);
        }
        for (const auto& [labels, buckets] : series) {
            INFO(name << "{" << labels << "}");
            REQUIRE(buckets.size() >= 2);
            CHECK(buckets.back().first == "+Inf");
            for (std::size_t i = 1; i < buckets.size(); ++i) {
                CHECK(buckets[i].second >= buckets[i - 1].second);
                if (buckets[i].first != "+Inf") CHECK(std::stod(buckets[i].first) > std::stod(buckets[i - 1].first));
            }
            const std::string bare = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
            CHECK(s[name + "_count" + bare] == buckets.back().second);
            CHECK(s.has(name + "_sum" + bare));
        }
    }
}

/// Every line is a # HELP or # TYPE comment, or `name{labels} value` of a
/// metric whose # TYPE came before it; label values escaped.
void check_format(const std::string& text) {
    const std::string label = R"([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")";
    const std::regex sample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{)" + label + "(," + label +
                            R"()*\})? (-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?|\+Inf|-Inf|NaN))");
    const std::regex comment(R"(# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+))");
    std::map<std::string, std::string> types;
    std::istringstream in(text);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        INFO(line);
        std::smatch m;
        if (line.rfind('#', 0) == 0) {
            REQUIRE(std::regex_match(line, m, comment));
            if (m[1] == "TYPE") {
                const std::string type = m[3].str();
                CHECK((type == "counter" || type == "gauge" || type == "histogram"));
                CHECK(types.count(m[2].str()) == 0);   // once per metric
                types[m[2].str()] = type;
            }
            continue;
        }
        REQUIRE(std::regex_match(line, m, sample));
        ++samples;
        // A histogram's samples are its name with _bucket, _sum or _count.
        std::string name = m[1].str();
        for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
            const auto base = name.size() > suffix.size() ? name.substr(0, name.size() - suffix.size()) : "";
            if (!types.count(name) && name == base + suffix && types.count(base) && types[base] == "histogram")
                name = base;
        }
        CHECK(types.count(name) == 1);
    }
    CHECK(samples > 0);
    CHECK(text.back() == '\n');
}

struct Steps : loom::test::Steps {
    loom::testing::FakeClock clock;
    Steps() {
        // Each takes a known time on the fake clock.
        handlers.add("tick", [this](loom::StepContext&) -> Json {
            clock.advance(300ms);
            return nullptr;
        });
        handlers.add("two_seconds", [this](loom::StepContext&) -> Json {
            clock.advance(2s);
            return nullptr;
        });
        handlers.add("flaky", [this](loom::StepContext& ctx) -> Json {
            if (ctx.attempt() == 1 && ctx.item_index().value_or(1) == 1) {
                clock.advance(100ms);
                throw std::runtime_error("flaky");
            }
            return nullptr;
        });
        handlers.add("boom", [](loom::StepContext&) -> Json { throw loom::FatalError("boom"); });
        handlers.add("noop", [](loom::StepContext&) -> Json { return nullptr; });
        handlers.add("gated", [this](loom::StepContext&) -> Json {
            gate.pass();
            return nullptr;
        });
    }
    loom::ExecutorOptions options(loom::Observer& observer, unsigned threads = 2) {
        loom::ExecutorOptions o{threads, &observer};
        o.clock = &clock;
        return o;
    }
};

loom::RetryPolicy retry_at_once(int attempts) {
    loom::RetryPolicy policy;
    policy.max_attempts = attempts;
    policy.initial_backoff = 0ms;
    return policy;
}

/// Keeps what on_commit() got.
struct CommitRecorder : loom::Observer {
    std::mutex mutex;
    std::vector<loom::CommitStats> commits;   // guarded by mutex
    void on_commit(const loom::CommitStats& stats) override {
        std::lock_guard lock(mutex);
        commits.push_back(stats);
    }
};

}  // namespace

TEST_CASE("metrics count a run's steps by outcome and time each attempt", "[engine][metrics]") {
    loom::Metrics metrics;
    Fixture<Steps> f;
    // A chain, so that the fake clock moves only inside the handler running.
    auto& executor = f.open({loom::WorkflowBuilder("shop", 1)
                                 .step("a", "tick")                                      // 0.3 s
                                 .step("b", "flaky").after("a").retry(retry_at_once(2))  // 0.1 s, then 0 s
                                 .step("d", "boom").after("b").on_error(loom::OnError::proceed)
                                 .step("c", "noop").after("d").when("${input.go} == true")
                                 .build()},
                            f.options(metrics));
    const auto id = executor.start("shop", {{"go", false}});
    REQUIRE(executor.wait(id).status == RunStatus::completed);

    const Scrape s(metrics.text());
    const std::string shop = w("shop");
    CHECK(s["loom_runs_started_total{" + shop + "}"] == 1);
    CHECK(s["loom_runs_finished_total{" + shop + ",status=\"completed\"}"] == 1);
    CHECK(s["loom_runs_finished_total{" + shop + ",status=\"failed\"}"] == 0);
    CHECK(s["loom_runs_finished_total{" + shop + ",status=\"cancelled\"}"] == 0);
    CHECK(s["loom_runs_given_up_total{" + shop + "}"] == 0);
    CHECK(s["loom_runs_live{" + shop + "}"] == 0);
    CHECK(s["loom_steps_total{" + shop + ",status=\"completed\"}"] == 2);   // a, b
    CHECK(s["loom_steps_total{" + shop + ",status=\"failed\"}"] == 1);      // d
    CHECK(s["loom_steps_total{" + shop + ",status=\"skipped\"}"] == 1);     // c
    CHECK(s["loom_steps_total{" + shop + ",status=\"cancelled\"}"] == 0);
    CHECK(s["loom_step_retries_total{" + shop + "}"] == 1);                 // b

    // Four attempts ended: a 0.3 s, b 0.1 s then 0 s, d 0 s. le is inclusive.
    const std::string duration = "loom_step_duration_seconds";
    CHECK(s[duration + "_count{" + shop + "}"] == 4);
    CHECK(s[duration + "_sum{" + shop + "}"] == Approx(0.4));
    CHECK(bucket(s, duration, shop + ",", "0.001") == 2);
    CHECK(bucket(s, duration, shop + ",", "0.05") == 2);
    CHECK(bucket(s, duration, shop + ",", "0.1") == 3);
    CHECK(bucket(s, duration, shop + ",", "0.25") == 3);
    CHECK(bucket(s, duration, shop + ",", "0.5") == 4);
    CHECK(bucket(s, duration, shop + ",", "+Inf") == 4);
    // Each attempt started when it became ready: no wait.
    CHECK(s["loom_step_queue_wait_seconds_count{" + shop + "}"] == 4);
    CHECK(s["loom_step_queue_wait_seconds_sum{" + shop + "}"] == 0);
    check_histograms(s);
    check_format(metrics.text());
}

TEST_CASE("metrics time how long a step waited for a concurrency slot", "[engine][metrics]") {
    loom::Metrics metrics;
    Fixture<Steps> f;
    auto options = f.options(metrics);
    options.max_running_per_workflow = {{"pair", 1}};
    auto& executor = f.open({loom::WorkflowBuilder("pair", 1)
                                 .step("p1", "two_seconds")
                                 .step("p2", "two_seconds")
                                 .build()},
                            options);
    REQUIRE(executor.wait(executor.start("pair")).status == RunStatus::completed);

    // Both were ready at once; one waited for the other's 2 s.
    const Scrape s(metrics.text());
    const std::string pair = w("pair") + ",";
    CHECK(s["loom_step_queue_wait_seconds_count{" + w("pair") + "}"] == 2);
    CHECK(s["loom_step_queue_wait_seconds_sum{" + w("pair") + "}"] == Approx(2.0));
    CHECK(bucket(s, "loom_step_queue_wait_seconds", pair, "0.001") == 1);
    CHECK(bucket(s, "loom_step_queue_wait_seconds", pair, "1") == 1);
    CHECK(bucket(s, "loom_step_queue_wait_seconds", pair, "2.5") == 2);
    CHECK(s["loom_step_duration_seconds_sum{" + w("pair") + "}"] == Approx(4.0));
    CHECK(bucket(s, "loom_step_duration_seconds", pair, "1") == 0);
    CHECK(bucket(s, "loom_step_duration_seconds", pair, "2.5") == 2);
    check_histograms(s);
}

TEST_CASE("metrics count the retries of for_each elements, and elements are not steps", "[engine][metrics]") {
    loom::Metrics metrics;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("fan", 1)
                                 .step("each", "flaky").for_each("${input.list}").retry(retry_at_once(2))
                                 .build()},
                            f.options(metrics));
    REQUIRE(executor.wait(executor.start("fan", {{"list", {1, 2, 3}}})).status == RunStatus::completed);

    const Scrape s(metrics.text());
    CHECK(s["loom_step_retries_total{" + w("fan") + "}"] == 1);   // element 1
    CHECK(s["loom_steps_total{" + w("fan") + ",status=\"completed\"}"] == 1);
    CHECK(s["loom_step_duration_seconds_count{" + w("fan") + "}"] == 1);      // the step, start to end
    CHECK(s["loom_step_duration_seconds_sum{" + w("fan") + "}"] == Approx(0.1));
    CHECK(s["loom_step_queue_wait_seconds_count{" + w("fan") + "}"] == 4);    // each element's attempts
    check_histograms(s);
}

TEST_CASE("metrics show live runs and runs by workflow and outcome", "[engine][metrics]") {
    loom::Metrics metrics;
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("held", 1).step("g", "gated").build(),
                             loom::WorkflowBuilder("fails", 1).step("x", "boom").build()},
                            f.options(metrics));
    const auto held = executor.start("held");
    f.gate.wait_for_waiters(1);
    const auto a = executor.start("fails");
    const auto b = executor.start("fails");
    CHECK(executor.wait(a).status == RunStatus::failed);
    CHECK(executor.wait(b).status == RunStatus::failed);
    {
        const Scrape s(metrics.text());
        CHECK(s["loom_runs_live{" + w("held") + "}"] == 1);
        CHECK(s["loom_runs_live{" + w("fails") + "}"] == 0);
        CHECK(s["loom_runs_started_total{" + w("fails") + "}"] == 2);
        CHECK(s["loom_runs_finished_total{" + w("fails") + ",status=\"failed\"}"] == 2);
        CHECK(s["loom_steps_total{" + w("fails") + ",status=\"failed\"}"] == 2);
    }
    const auto cancelled = executor.start("held");
    CHECK(executor.cancel(cancelled));
    f.gate.release();
    CHECK(executor.wait(held).status == RunStatus::completed);
    CHECK(executor.wait(cancelled).status == RunStatus::cancelled);

    const Scrape s(metrics.text());
    CHECK(s["loom_runs_live{" + w("held") + "}"] == 0);
    CHECK(s["loom_runs_started_total{" + w("held") + "}"] == 2);
    CHECK(s["loom_runs_finished_total{" + w("held") + ",status=\"completed\"}"] == 1);
    CHECK(s["loom_runs_finished_total{" + w("held") + ",status=\"cancelled\"}"] == 1);
    // Workflows come in name order.
    const std::string text = metrics.text();
    CHECK(text.find("loom_runs_live{workflow=\"fails\"}") < text.find("loom_runs_live{workflow=\"held\"}"));
    check_format(text);
}

TEST_CASE("metrics hear each durable group commit, with its size", "[engine][metrics]") {
    loom::Metrics metrics;
    CommitRecorder recorder;
    loom::Observers both{&recorder, &metrics};
    Fixture<Steps> f;
    auto& executor = f.open({loom::WorkflowBuilder("chain", 1)
                                 .step("s1", "noop")
                                 .step("s2", "noop").after("s1")
                                 .step("s3", "noop").after("s2")
                                 .build()},
                            f.options(both));
    for (int i = 0; i < 3; ++i) REQUIRE(executor.wait(executor.start("chain")).status == RunStatus::completed);

    std::lock_guard lock(recorder.mutex);
    REQUIRE_FALSE(recorder.commits.empty());
    std::size_t rows = 0, steps = 0, events = 0, runs = 0;
    for (const auto& c : recorder.commits) {
        CHECK(c.duration >= 0ns);
        CHECK(c.runs + c.steps + c.items + c.events > 0);   // an empty batch is not committed, nor told
        rows += c.runs + c.steps + c.items + c.events;
        steps += c.steps;
        events += c.events;
        runs += c.runs;
    }
    // Each run: its row, then its final write; three step rows at least.
    CHECK(runs >= 6);
    CHECK(steps >= 9);
    CHECK(events >= 3 * (2 + 3 * 2));   // run started and ended, each step started and completed
    const Scrape s(metrics.text());
    CHECK(s["loom_commit_duration_seconds_count"] == static_cast<double>(recorder.commits.size()));
    CHECK(s["loom_commit_rows_count"] == static_cast<double>(recorder.commits.size()));
    CHECK(s["loom_commit_rows_sum"] == static_cast<double>(rows));
    check_histograms(s);
}

TEST_CASE("a run given up after a failed commit is no longer counted live", "[engine][metrics]") {
    loom::Metrics metrics;
    loom::MemoryStore memory;
    loom::test::FlakyStore store(memory);
    Steps steps;
    loom::Executor executor(store, steps.handlers, steps.options(metrics));
    executor.add_workflow(loom::WorkflowBuilder("held", 1).step("g", "gated").build());
    const auto id = executor.start("held");
    steps.gate.wait_for_waiters(1);
    CHECK(Scrape(metrics.text())["loom_runs_live{" + w("held") + "}"] == 1);
    store.failing = true;
    steps.gate.release();
    REQUIRE_THROWS_WITH(executor.wait(id), "[loom.store.io] injected fault");

    const Scrape s(metrics.text());
    CHECK(s["loom_runs_live{" + w("held") + "}"] == 0);
    CHECK(s["loom_runs_given_up_total{" + w("held") + "}"] == 1);
    CHECK(s["loom_runs_finished_total{" + w("held") + ",status=\"completed\"}"] == 0);
}

TEST_CASE("metrics escape label values, and every line is text format 0.0.4", "[engine][metrics]") {
    // Workflow names that reach an executor are words, dots and dashes; a
    // host may still tell a Metrics anything.
    loom::Metrics metrics;
    const std::string hostile = "a\"b\\c\nd} 1\n# TYPE x counter";
    metrics.on_run_changed(loom::RunChange{"r1", hostile, true, RunStatus::running, "", loom::event::run_started});
    loom::StepEvent step;
    step.workflow_name = hostile;
    step.step_id = "s";
    step.status = loom::StepStatus::completed;
    step.kind = loom::event::step_completed;
    step.ready_at = loom::testing::FakeClock::kDefaultStart;
    step.started_at = *step.ready_at + 5ms;
    step.finished_at = *step.started_at + 1500ms;
    metrics.on_step_changed(step);
    metrics.on_commit(loom::CommitStats{3ms, 1, 2, 0, 3});

    const std::string text = metrics.text();
    const std::string escaped = R"(workflow="a\"b\\c\nd} 1\n# TYPE x counter")";
    const Scrape s(text);
    CHECK(s["loom_runs_started_total{" + escaped + "}"] == 1);
    CHECK(s["loom_runs_live{" + escaped + "}"] == 1);
    CHECK(s["loom_steps_total{" + escaped + ",status=\"completed\"}"] == 1);
    CHECK(s["loom_step_duration_seconds_sum{" + escaped + "}"] == Approx(1.5));
    CHECK(bucket(s, "loom_step_duration_seconds", escaped + ",", "1") == 0);
    CHECK(bucket(s, "loom_step_duration_seconds", escaped + ",", "2.5") == 1);
    CHECK(bucket(s, "loom_step_queue_wait_seconds", escaped + ",", "0.005") == 1);
    CHECK(bucket(s, "loom_commit_duration_seconds", "", "0.0025") == 0);
    CHECK(bucket(s, "loom_commit_duration_seconds", "", "0.005") == 1);
    CHECK(bucket(s, "loom_commit_rows", "", "5") == 0);
    CHECK(bucket(s, "loom_commit_rows", "", "10") == 1);
    CHECK(s["loom_commit_rows_sum"] == 6);
    check_format(text);
    check_histograms(s);

    std::ostringstream written;
    metrics.write(written);
    CHECK(written.str() == text);
    CHECK(std::string(loom::Metrics::content_type) == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("Observers tells each observer, even after one throws", "[engine][metrics][observer]") {
    struct Throwing : loom::Observer {
        void on_run_changed(const loom::RunChange&) override { throw std::runtime_error("observer bug"); }
        void on_step_changed(const loom::StepEvent&) override { throw std::runtime_error("observer bug"); }
    } throwing;
    // snippet begin: metrics
    std::ostringstream lines;                      // std::cerr, say
    loom::LogObserver log(lines);
    loom::Metrics metrics;
    // snippet end: metrics
    // snippet begin: metrics
    loom::Observers observers{&log, &metrics};
    loom::ExecutorOptions options;
    options.observer = &observers;                 // each of them is told everything
    // snippet end: metrics
    // One that throws, told first: the others still hear everything.
    loom::Observers with_bug{&throwing, &observers};
    options.observer = &with_bug;
    options.threads = 2;
    loom::test::Steps steps;
    steps.handlers.add("noop", [](loom::StepContext&) -> Json { return nullptr; });
    loom::MemoryStore store;
    loom::Executor executor(store, steps.handlers, options);
    executor.add_workflow(loom::WorkflowBuilder("pair", 1).step("one", "noop").build());
    const auto id = executor.start("pair");
    REQUIRE(executor.wait(id).status == RunStatus::completed);
    // snippet begin: metrics
    // A host's GET /metrics answers with Metrics::content_type and:
    const std::string body = metrics.text();
    // snippet end: metrics

    CHECK(lines.str().find("run " + id + " started (pair)") != std::string::npos);
    CHECK(lines.str().find("run " + id + " completed") != std::string::npos);
    CHECK(lines.str().find("step one completed") != std::string::npos);
    const Scrape s(body);
    CHECK(s["loom_runs_finished_total{" + w("pair") + ",status=\"completed\"}"] == 1);
    CHECK(s["loom_steps_total{" + w("pair") + ",status=\"completed\"}"] == 1);
}
