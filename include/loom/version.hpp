// Loom's version, written only here: CMakeLists.txt reads it from this file for
// the package version that find_package(loom 0.1) checks.
#pragma once

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0

#define LOOM_VERSION_STRINGIFY_(x) #x
#define LOOM_VERSION_STRINGIFY(x) LOOM_VERSION_STRINGIFY_(x)
/// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
#define LOOM_VERSION_STRING                                                  \
    LOOM_VERSION_STRINGIFY(LOOM_VERSION_MAJOR) "." LOOM_VERSION_STRINGIFY(  \
        LOOM_VERSION_MINOR) "." LOOM_VERSION_STRINGIFY(LOOM_VERSION_PATCH)

namespace loom {

/// The version of the headers compiled against, as LOOM_VERSION_STRING.
inline constexpr const char* kVersion = LOOM_VERSION_STRING;

}  // namespace loom
