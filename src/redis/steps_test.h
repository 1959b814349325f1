// Table-driven tests of the Redis commands: a command and the reply it must get, run in turn.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redis/memory_records.h"

namespace chorus::redis {

struct Step {
  std::vector<std::string> argv;
  Reply want;
};

// Runs each step through `run` in turn, expecting its reply; a failure names the command.
template <typename Run>
void play_steps(const std::vector<Step>& steps, Run&& run) {
  for (const Step& s : steps) {
    std::string line;
    for (const std::string& x : s.argv)
      line += x + " ";
    SCOPED_TRACE(line);
    const Reply got = run(s.argv);
    EXPECT_TRUE(got == s.want) << "got:  " << show(got) << "\nwant: " << show(s.want);
  }
}

}  // namespace chorus::redis
