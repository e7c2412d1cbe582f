// The signer daemon's counters, gauges and latency histograms, rendered in the Prometheus text
// exposition format (version 0.0.4). Thread-safe; one instance per server.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace kubehsm::service {

class Metrics final {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;  // shared by reference between the server's threads
  Metrics& operator=(const Metrics&) = delete;

  // One finished RPC: `api` "v1"/"v1alpha1", `method` "Sign"/"FetchKeys"/"Metadata", `code` the
  // gRPC code name ("OK", "UNAVAILABLE", ...), `seconds` its handler latency.
  void RecordRequest(const std::string& api, const std::string& method, const std::string& code, double seconds);
  // One accepted connection, allowed or refused by the peer-credential policy.
  // What the acceptor did with a connection: handed to gRPC, closed for its peer credentials, or
  // closed because the peer's uid (or everyone) already holds the maximum.
  enum class ConnectionResult { kAllowed, kDenied, kOverLimit };
  void RecordConnection(ConnectionResult result);
  void RecordKeyReload();
  void RecordBackendDown();
  void RecordBackendRecovery();
  void SetBackendUp(bool up);
  void SetPublishedKeys(std::size_t n, int64_t data_timestamp_seconds);

  // The whole exposition document.
  std::string RenderPrometheus() const;

  // Upper bounds (seconds) of the latency histogram buckets, like kube-apiserver's
  // apiserver_externaljwt_request_duration_seconds (1 ms .. 60 s).
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,  10,   60};

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};  // non-cumulative counts
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> requests_;  // api, method, code
  std::map<std::string, Histogram> latency_;                                        // method
  uint64_t connections_allowed_ = 0;
  uint64_t connections_denied_ = 0;
  uint64_t connections_over_limit_ = 0;
  uint64_t key_reloads_ = 0;
  uint64_t backend_down_ = 0;
  uint64_t backend_recoveries_ = 0;
  bool backend_up_ = false;
  std::size_t published_keys_ = 0;
  int64_t data_timestamp_ = 0;
};

}  // namespace kubehsm::service
