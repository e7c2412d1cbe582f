#include "service/metrics.h"

#include <cstdio>
#include <sstream>

namespace kubehsm::service {
namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

void Metrics::RecordRequest(const std::string& api, const std::string& method, const std::string& code,
                            double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{api, method, code}];
  Histogram& h = latency_[method];
  ++h.count;
  h.sum += seconds;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++h.buckets[i];
      break;
    }
  }
}

void Metrics::RecordConnection(ConnectionResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  switch (result) {
    case ConnectionResult::kAllowed: ++connections_allowed_; break;
    case ConnectionResult::kDenied: ++connections_denied_; break;
    case ConnectionResult::kOverLimit: ++connections_over_limit_; break;
  }
}

void Metrics::RecordKeyReload() {
  std::lock_guard<std::mutex> lock(mu_);
  ++key_reloads_;
}

void Metrics::RecordBackendDown() {
  std::lock_guard<std::mutex> lock(mu_);
  ++backend_down_;
}

void Metrics::RecordBackendRecovery() {
  std::lock_guard<std::mutex> lock(mu_);
  ++backend_recoveries_;
}

void Metrics::SetBackendUp(bool up) {
  std::lock_guard<std::mutex> lock(mu_);
  backend_up_ = up;
}

void Metrics::SetPublishedKeys(std::size_t n, int64_t data_timestamp_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  published_keys_ = n;
  data_timestamp_ = data_timestamp_seconds;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream o;
  o << "# HELP kubehsm_serve_requests_total ExternalJWTSigner RPCs handled, by API version, method and gRPC code.\n"
       "# TYPE kubehsm_serve_requests_total counter\n";
  for (const auto& [k, v] : requests_) {
    o << "kubehsm_serve_requests_total{api=\"" << std::get<0>(k) << "\",method=\"" << std::get<1>(k)
      << "\",code=\"" << std::get<2>(k) << "\"} " << v << "\n";
  }
  o << "# HELP kubehsm_serve_request_duration_seconds Handler latency of ExternalJWTSigner RPCs.\n"
       "# TYPE kubehsm_serve_request_duration_seconds histogram\n";
  for (const auto& [method, h] : latency_) {
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      o << "kubehsm_serve_request_duration_seconds_bucket{method=\"" << method << "\",le=\"" << Num(kBuckets[i])
        << "\"} " << cumulative << "\n";
    }
    o << "kubehsm_serve_request_duration_seconds_bucket{method=\"" << method << "\",le=\"+Inf\"} " << h.count << "\n"
      << "kubehsm_serve_request_duration_seconds_sum{method=\"" << method << "\"} " << Num(h.sum) << "\n"
      << "kubehsm_serve_request_duration_seconds_count{method=\"" << method << "\"} " << h.count << "\n";
  }
  o << "# HELP kubehsm_serve_connections_total Connections accepted on the signer socket: handed to gRPC (allowed), closed for the peer credentials (denied) or over a connection cap (over_limit).\n"
       "# TYPE kubehsm_serve_connections_total counter\n"
    << "kubehsm_serve_connections_total{result=\"allowed\"} " << connections_allowed_ << "\n"
    << "kubehsm_serve_connections_total{result=\"denied\"} " << connections_denied_ << "\n"
    << "kubehsm_serve_connections_total{result=\"over_limit\"} " << connections_over_limit_ << "\n"
    << "# HELP kubehsm_serve_key_reloads_total Times the service-account key set was (re)loaded from the token.\n"
       "# TYPE kubehsm_serve_key_reloads_total counter\n"
    << "kubehsm_serve_key_reloads_total " << key_reloads_ << "\n"
    << "# HELP kubehsm_serve_backend_down_total Times the token was found unavailable or logged out.\n"
       "# TYPE kubehsm_serve_backend_down_total counter\n"
    << "kubehsm_serve_backend_down_total " << backend_down_ << "\n"
    << "# HELP kubehsm_serve_backend_recoveries_total Times the token was re-opened after being down.\n"
       "# TYPE kubehsm_serve_backend_recoveries_total counter\n"
    << "kubehsm_serve_backend_recoveries_total " << backend_recoveries_ << "\n"
    << "# HELP kubehsm_serve_backend_up 1 when the token is open and signing, 0 while recovering.\n"
       "# TYPE kubehsm_serve_backend_up gauge\n"
    << "kubehsm_serve_backend_up " << (backend_up_ ? 1 : 0) << "\n"
    << "# HELP kubehsm_serve_published_keys Keys FetchKeys returns.\n"
       "# TYPE kubehsm_serve_published_keys gauge\n"
    << "kubehsm_serve_published_keys " << published_keys_ << "\n"
    << "# HELP kubehsm_serve_keys_data_timestamp_seconds FetchKeys data_timestamp (Unix seconds).\n"
       "# TYPE kubehsm_serve_keys_data_timestamp_seconds gauge\n"
    << "kubehsm_serve_keys_data_timestamp_seconds " << data_timestamp_ << "\n";
  return o.str();
}

}  // namespace kubehsm::service
