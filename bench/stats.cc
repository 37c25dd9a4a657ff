#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace agentvm::bench {
namespace {

std::vector<double> Sorted(const std::vector<double>& values) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

std::string Printf(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

}  // namespace

double Samples::Percentile(double q) const {
  if (values_.empty()) return 0;
  const auto sorted = Sorted(values_);
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double Samples::Median() const {
  if (values_.empty()) return 0;
  const auto sorted = Sorted(values_);
  const std::size_t n = sorted.size();
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

double Samples::Min() const { return values_.empty() ? 0 : *std::min_element(values_.begin(), values_.end()); }
double Samples::Max() const { return values_.empty() ? 0 : *std::max_element(values_.begin(), values_.end()); }

double Samples::Mean() const {
  if (values_.empty()) return 0;
  return std::accumulate(values_.begin(), values_.end(), 0.0) / static_cast<double>(values_.size());
}

std::string FormatSeconds(double s) { return Printf("%.2f s", s); }
std::string FormatMillis(double s) { return Printf("%.2f ms", s * 1000); }
std::string FormatRatio(double numerator, double denominator) {
  return denominator > 0 ? Printf("%.2f", numerator / denominator) : "n/a";
}

}  // namespace agentvm::bench
