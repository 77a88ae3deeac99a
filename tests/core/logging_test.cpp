#include "glimpse/core/logging.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "glimpse/core/error.h"
#include "glimpse/core/progress.h"

namespace glimpse::core {
namespace {

TEST(LoggingTest, LevelsParseAndFilter) {
  const LogLevel saved = log_level();
  EXPECT_EQ(parse_log_level("debug"), LogLevel::Debug);
  EXPECT_EQ(parse_log_level("warning"), LogLevel::Warn);
  EXPECT_FALSE(parse_log_level("loud").has_value());
  set_log_level(LogLevel::Warn);
  EXPECT_TRUE(log_enabled(LogLevel::Error));
  EXPECT_FALSE(log_enabled(LogLevel::Info));
  int evaluated = 0;
  GLIMPSE_LOG(Debug) << "never built " << ++evaluated;
  EXPECT_EQ(evaluated, 0);  // a disabled level does not evaluate its arguments
  set_log_level(saved);
}

TEST(LoggingTest, EnvironmentVariable) {
  const LogLevel saved = log_level();
  ::setenv("GLIMPSE_LOG_LEVEL", "trace", 1);
  init_logging_from_env();
  EXPECT_EQ(log_level(), LogLevel::Trace);
  ::setenv("GLIMPSE_LOG_LEVEL", "chatty", 1);
  EXPECT_THROW(init_logging_from_env(), InputError);
  ::unsetenv("GLIMPSE_LOG_LEVEL");
  set_log_level(saved);
}

TEST(ProgressTest, RendersAndStaysQuietWithoutATerminal) {
  EXPECT_EQ(Progress::render("load", 5, 10, 10), "load [#####     ] 5/10");
  EXPECT_EQ(Progress::render("load", 0, 0, 4), "load [####] 0/0");
  Progress p("test", 3);
  p.advance();
  p.advance(5);  // clamped
  EXPECT_EQ(p.done(), 3);
  EXPECT_FALSE(p.drawing());  // ctest's stderr is not a terminal
}

}  // namespace
}  // namespace glimpse::core
