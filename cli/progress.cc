#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <iostream>

namespace kubehsm::cli {

bool ElapsedDisplay::IsTerminal(const std::ostream& out) { return &out == &std::cout && ::isatty(STDOUT_FILENO) == 1; }

void ElapsedDisplay::Start() {
  if (!terminal_) return;
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  thread_ = std::thread([this] {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock wait_lock(mu_);
    out_ << "\r  ... 0s" << std::flush;  // at once: the step has started
    while (!cv_.wait_for(wait_lock, std::chrono::seconds(1), [this] { return !running_; })) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
      out_ << "\r  ... " << elapsed.count() << "s" << std::flush;
    }
  });
}

void ElapsedDisplay::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  out_ << "\r\033[K" << std::flush;  // erase the display line
}

}  // namespace kubehsm::cli
