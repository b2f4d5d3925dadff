#include <gtest/gtest.h>

#include "format/trace_format.h"

// The harness itself: proves GoogleTest links against etwtrace_core and runs under ctest.
TEST(Harness, FormatHeaderIsSelfContained) {
    EXPECT_EQ(sizeof(etwtrace::format::kMagic), 8u);
}
