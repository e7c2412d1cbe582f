// An elapsed-time display for a step that runs for seconds with nothing to print (a key being
// generated in the token): drawn on a terminal only, so pipes, files and CI logs never get
// progress noise.
#pragma once

#include <condition_variable>
#include <mutex>
#include <ostream>
#include <thread>

namespace kubehsm::cli {

class ElapsedDisplay final {
 public:
  // Draws on `out` when `terminal` is true; otherwise Start and Stop do nothing. `out` is borrowed
  // and must outlive the display; nothing else may write to it between Start and Stop.
  ElapsedDisplay(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}
  ElapsedDisplay(const ElapsedDisplay&) = delete;  // owns the drawing thread
  ElapsedDisplay& operator=(const ElapsedDisplay&) = delete;
  ~ElapsedDisplay() { Stop(); }

  // Draws "  ... 0s" at once, then redraws "  ... Ns" once a second (a no-op while already running or without a
  // terminal).
  void Start();
  // Stops the drawing thread and erases the display line.
  void Stop();

  // True when `out` is this process's standard output and that is a terminal.
  static bool IsTerminal(const std::ostream& out);

 private:
  std::ostream& out_;
  const bool terminal_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  std::thread thread_;
};

}  // namespace kubehsm::cli
