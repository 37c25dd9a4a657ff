// Samples of one measured quantity and the few statistics the tables show.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace agentvm::bench {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

class Samples {
 public:
  void Add(Clock::duration d) { values_.push_back(std::chrono::duration_cast<Seconds>(d).count()); }
  void AddSeconds(double s) { values_.push_back(s); }
  void AddValue(double v) { values_.push_back(v); }  // a unitless quantity, e.g. a ratio

  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  // Nearest-rank percentile, q in (0, 1]; 0 when empty.
  double Percentile(double q) const;
  double Median() const;  // midpoint of the two middle values for an even count
  double Min() const;
  double Max() const;
  double Mean() const;

 private:
  std::vector<double> values_;  // seconds (or unitless), in the order measured
};

// "5.84 s" / "3.21 ms", the unit chosen by the caller so a column reads alike.
std::string FormatSeconds(double s);
std::string FormatMillis(double s);
// "1.02" or "n/a" when the denominator is 0.
std::string FormatRatio(double numerator, double denominator);

}  // namespace agentvm::bench
