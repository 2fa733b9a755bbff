// The fan-out example's workflow and handlers, shared with its test
// (tests/docs/examples_test.cpp): "list" names the images of an album; "resize",
// a for_each step, makes a thumbnail of each, at most 3 at a time, each
// element retried on its own; "publish" receives the thumbnails in album
// order, whatever order they were made in.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include <loom/loom.hpp>

#include "journal.hpp"

namespace example::thumbnails {

inline loom::Workflow workflow() {
    loom::RetryPolicy retry;
    retry.max_attempts = 3;
    retry.initial_backoff = std::chrono::milliseconds(20);
    return loom::WorkflowBuilder("thumbnails", 1)
        .step("list", "list").input({{"album", "${input.album}"}})
        .step("resize", "resize").after("list")
        .for_each("${steps.list.output.images}").max_parallel(3).retry(retry)
        .input({{"image", "${item}"}, {"n", "${index}"}, {"width", "${input.width}"}})
        .step("publish", "publish").input({{"thumbs", "${steps.resize.output}"}}).after("resize")
        .build();
}

/// What the handlers share: the journal, and an image whose first resize
/// fails (a flaky image service), if any.
struct Service {
    Journal journal;
    std::string flaky;
    std::chrono::milliseconds work{0};   // how long one resize takes
};

/// `service` must outlive the handlers.
inline void add_handlers(loom::HandlerRegistry& handlers, Service& service) {
    handlers.add("list", [](loom::StepContext& ctx) -> loom::Json {
        loom::Json images = loom::Json::array();
        for (const char* name : {"beach", "cliff", "dunes", "harbour", "lighthouse", "pier", "sunset"})
            images.push_back(ctx.input<std::string>("album") + "/" + name + ".jpg");
        return {{"images", images}};
    });
    handlers.add("resize", [&service](loom::StepContext& ctx) -> loom::Json {
        const std::string image = ctx.input<std::string>("image");
        if (image == service.flaky && ctx.attempt() == 1)
            throw loom::RetryableError("image service busy");   // this element alone is retried
        std::this_thread::sleep_for(service.work);   // resizing takes a while
        service.journal.note("resized " + image);
        const std::string thumb = image.substr(0, image.size() - 4) + "_" +
                                  std::to_string(ctx.input<int>("width")) + ".jpg";
        return thumb;
    });
    handlers.add("publish", [&service](loom::StepContext& ctx) -> loom::Json {
        const loom::Json thumbs = ctx.input<loom::Json>("thumbs");
        service.journal.note("published " + std::to_string(thumbs.size()) + " thumbnails");
        return thumbs.size();
    });
}

}  // namespace example::thumbnails
