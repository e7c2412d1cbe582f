#include "bench/harness.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <latch>
#include <mutex>
#include <thread>

namespace kubehsm::bench {

nlohmann::json ToJson(const Figure& f) {
  nlohmann::json j;
  j["name"] = f.name;
  j["value"] = f.value;
  j["unit"] = f.unit;
  j["baseline"] = f.baseline;
  j["ratio"] = f.ratio;
  if (f.target) {
    j["target"] = *f.target;
    j["met"] = f.better == "higher" ? f.ratio >= *f.target : f.ratio <= *f.target;
  } else {
    j["target"] = nullptr;
    j["met"] = nullptr;
  }
  j["better"] = f.better;
  j["detail"] = f.detail;
  return j;
}

void Emit(const Figure& f) { std::cout << ToJson(f).dump() << "\n" << std::flush; }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return v[std::min(i, v.size() - 1)];
}

Result<double> Throughput(int threads, double seconds, const std::function<Status()>& op) {
  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  std::mutex error_mu;
  Status first_error;
  std::latch ready(threads + 1);
  std::vector<std::jthread> workers;
  workers.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      ready.arrive_and_wait();
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        Status s = op();
        if (!s.ok()) {
          std::lock_guard lock(error_mu);
          if (first_error.ok()) first_error = s;
          stop = true;
          break;
        }
        ++n;
      }
      done += n;
    });
  }
  ready.arrive_and_wait();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  workers.clear();  // joins; in-flight operations finish and count
  const double elapsed = SecondsSince(t0);
  if (!first_error.ok()) return first_error;
  return static_cast<double>(done.load()) / elapsed;
}

double Paired::MedianRatio() const {
  std::vector<double> r;
  for (std::size_t i = 0; i < baseline.size() && i < subject.size(); ++i) {
    if (baseline[i] > 0) r.push_back(subject[i] / baseline[i]);
  }
  return Median(r);
}

Result<Paired> Interleave(int rounds, const std::function<Result<double>()>& baseline,
                          const std::function<Result<double>()>& subject) {
  Paired p;
  for (int i = 0; i < rounds; ++i) {
    KH_ASSIGN_OR_RETURN(double a, baseline());
    KH_ASSIGN_OR_RETURN(double b, subject());
    p.baseline.push_back(a);
    p.subject.push_back(b);
  }
  return p;
}

}  // namespace kubehsm::bench
