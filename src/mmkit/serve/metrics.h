// Request counters and latency histograms per route, rendered in the
// Prometheus text format (GET /metrics) and as JSON.
//
//   Metrics m;
//   m.observe("/v1/embeddings", 200, 0.012);   // route, HTTP status, seconds
//   std::string text = m.prometheus();
//
// Thread-safe (one mutex; an observation is a few increments).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmkit::serve {

class Metrics {
 public:
  // Upper bounds of the latency buckets in seconds (cumulative, as Prometheus' le).
  static const std::vector<double>& buckets();

  void observe(const std::string& route, int status, double seconds);
  // Extra gauges/counters added by the server at render time (batch sizes, queue length).
  void set_gauge(const std::string& name, double v);

  std::string prometheus() const;
  nlohmann::json json() const;
  int64_t count(const std::string& route, int status) const;
  // Latency quantile estimated from the histogram (upper bound of the bucket holding it).
  double quantile(const std::string& route, double q) const;

 private:
  struct Route {
    std::map<int, int64_t> by_status;
    std::vector<int64_t> bucket_counts;  // non-cumulative, [buckets().size() + 1] (last: +Inf)
    double sum_s = 0;
    int64_t n = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Route> routes_;
  std::map<std::string, double> gauges_;
};

}  // namespace mmkit::serve
