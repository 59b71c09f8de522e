#include "mmkit/serve/metrics.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace mmkit::serve {

const std::vector<double>& Metrics::buckets() {
  static const std::vector<double> b = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
  return b;
}

void Metrics::observe(const std::string& route, int status, double s) {
  std::lock_guard<std::mutex> l(mu_);
  Route& r = routes_[route];
  if (r.bucket_counts.empty()) r.bucket_counts.assign(buckets().size() + 1, 0);
  ++r.by_status[status];
  size_t i = size_t(std::lower_bound(buckets().begin(), buckets().end(), s) - buckets().begin());
  ++r.bucket_counts[i];
  r.sum_s += s;
  ++r.n;
}

void Metrics::set_gauge(const std::string& name, double v) {
  std::lock_guard<std::mutex> l(mu_);
  gauges_[name] = v;
}

int64_t Metrics::count(const std::string& route, int status) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) return 0;
  auto s = it->second.by_status.find(status);
  return s == it->second.by_status.end() ? 0 : s->second;
}

double Metrics::quantile(const std::string& route, double q) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end() || it->second.n == 0) return 0;
  const Route& r = it->second;
  int64_t want = std::max<int64_t>(1, int64_t(q * double(r.n) + 0.999999)), seen = 0;
  for (size_t i = 0; i < r.bucket_counts.size(); ++i) {
    seen += r.bucket_counts[i];
    if (seen >= want) return i < buckets().size() ? buckets()[i] : std::numeric_limits<double>::infinity();
  }
  return std::numeric_limits<double>::infinity();
}

std::string Metrics::prometheus() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  char buf[256];
  out += "# HELP mmkit_requests_total Requests by route and HTTP status.\n# TYPE mmkit_requests_total counter\n";
  for (auto& [route, r] : routes_)
    for (auto& [st, n] : r.by_status) {
      std::snprintf(buf, sizeof buf, "mmkit_requests_total{route=\"%s\",status=\"%d\"} %lld\n", route.c_str(), st,
                    (long long)n);
      out += buf;
    }
  out += "# HELP mmkit_request_seconds Request latency by route.\n# TYPE mmkit_request_seconds histogram\n";
  for (auto& [route, r] : routes_) {
    int64_t cum = 0;
    for (size_t i = 0; i <= buckets().size(); ++i) {
      cum += r.bucket_counts[i];
      if (i < buckets().size())
        std::snprintf(buf, sizeof buf, "mmkit_request_seconds_bucket{route=\"%s\",le=\"%g\"} %lld\n", route.c_str(),
                      buckets()[i], (long long)cum);
      else
        std::snprintf(buf, sizeof buf, "mmkit_request_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lld\n", route.c_str(),
                      (long long)cum);
      out += buf;
    }
    std::snprintf(buf, sizeof buf, "mmkit_request_seconds_sum{route=\"%s\"} %.6f\nmmkit_request_seconds_count{route=\"%s\"} %lld\n",
                  route.c_str(), r.sum_s, route.c_str(), (long long)r.n);
    out += buf;
  }
  for (auto& [name, v] : gauges_) {
    std::snprintf(buf, sizeof buf, "%s %.17g\n", name.c_str(), v);
    out += buf;
  }
  return out;
}

nlohmann::json Metrics::json() const {
  nlohmann::json j = nlohmann::json::object();
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [route, r] : routes_) names.push_back(route);
  }
  for (auto& route : names) {
    nlohmann::json rj;
    {
      std::lock_guard<std::mutex> l(mu_);
      const Route& r = routes_.at(route);
      for (auto& [st, n] : r.by_status) rj["status"][std::to_string(st)] = n;
      rj["count"] = r.n;
      rj["mean_s"] = r.n ? r.sum_s / double(r.n) : 0.0;
    }
    rj["p50_le_s"] = quantile(route, 0.5);
    rj["p99_le_s"] = quantile(route, 0.99);
    j[route] = rj;
  }
  return j;
}

}  // namespace mmkit::serve
