// The measurement harness of kubehsm_bench: timed loops on N threads, A/B interleaving with
// per-round ratios, medians, and the JSON record every figure is reported as.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace kubehsm::bench {

// One reported figure. `ratio` compares the subject with a baseline measured in the same run;
// `better` says which direction meets `target` ("higher": ratio >= target, "lower": ratio <= target).
// A figure without a target is informational (target and met are null in JSON).
struct Figure {
  std::string name;
  double value = 0;
  std::string unit;
  double baseline = 0;
  double ratio = 0;
  std::optional<double> target;
  std::string better = "higher";
  nlohmann::json detail = nlohmann::json::object();
};

// The JSON record {name, value, unit, baseline, ratio, target, met, better, detail}.
nlohmann::json ToJson(const Figure& f);
// Prints ToJson(f) as one line on stdout (bench/run collects these).
void Emit(const Figure& f);

double Median(std::vector<double> v);
// The p-th percentile (0..100, nearest rank) of `v`; 0 for an empty vector.
double Percentile(std::vector<double> v, double p);

// Runs `op` on `threads` threads for `seconds` (all threads start together) and returns completed
// operations per second. The first failing op stops every thread and its status is returned.
Result<double> Throughput(int threads, double seconds, const std::function<Status()>& op);

// A/B interleaving: round i runs `baseline` then `subject`; each returns a rate or a time.
struct Paired {
  std::vector<double> baseline, subject;
  // Median of the per-round ratios subject/baseline (pairing cancels slow drifts of a noisy box).
  double MedianRatio() const;
};
Result<Paired> Interleave(int rounds, const std::function<Result<double>()>& baseline,
                          const std::function<Result<double>()>& subject);

using Clock = std::chrono::steady_clock;
inline double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace kubehsm::bench
