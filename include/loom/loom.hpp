// Umbrella header: the whole public API of Loom.
#pragma once

#include <loom/clock.hpp>
#include <loom/error.hpp>
#include <loom/events.hpp>
#include <loom/executor.hpp>
#include <loom/handler.hpp>
#include <loom/json.hpp>
#include <loom/memory_store.hpp>
#include <loom/metrics.hpp>
#include <loom/observer.hpp>
#include <loom/run.hpp>
#include <loom/sqlite_store.hpp>
#include <loom/store.hpp>
#include <loom/version.hpp>
#include <loom/workflow.hpp>
