// Names the calling thread as `top`, `perf` and gdb show it (Linux keeps 15 characters), so a
// profile of chorusd says which of its threads spent the time. For the drivers around the core:
// the Raft core itself has no threads.
#pragma once

#include <pthread.h>

namespace chorus::base {

inline void set_thread_name(const char* name) {
  char buf[16] = {};
  for (int i = 0; i < 15 && name[i] != '\0'; ++i)
    buf[i] = name[i];
  (void)pthread_setname_np(pthread_self(), buf);
}

}  // namespace chorus::base
