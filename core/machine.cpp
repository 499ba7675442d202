#include "core/machine.hpp"

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/kernels/conv.hpp"
#include "core/kernels/kernels.hpp"
#include "core/parallel.hpp"
#include "core/version.hpp"

namespace shears {

namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0)
      if (size_t colon = line.find(':'); colon != std::string::npos)
        return line.substr(line.find_first_not_of(" \t", colon + 1));
  return "unknown";
}

nlohmann::json as_json(const Machine& m) {
  return {{"cpu", m.cpu},
          {"isa", m.isa},
          {"threads", m.threads},
          {"blas_core", m.blas_core},
          {"blas_config", m.blas_config},
          {"conv_paths", m.conv_paths},
          {"shears_version", m.version}};
}

}  // namespace

Machine this_machine() {
  static const std::string cpu = cpu_model();
  const blas::Info b = blas::info();
  const std::optional<ConvPath> forced = forced_conv_path();
  return {cpu,      kernels::isa_name(kernels::kernels().isa),     num_threads(), b.core,
          b.config, forced ? conv_path_name(*forced) : "by shape", kVersion};
}

std::string machine_json(const Machine& m) { return as_json(m).dump(); }

std::string machine_line(const Machine& m) {
  return m.cpu + ", " + m.isa + ", " + std::to_string(m.threads) + " thread(s), OpenBLAS core " + m.blas_core + " (" +
         m.blas_config.substr(0, m.blas_config.find(' ', m.blas_config.find(' ') + 1)) + "), conv paths " +
         m.conv_paths + ", shears " + m.version;
}

void append_machine_record(const std::filesystem::path& file) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  nlohmann::json record = as_json(this_machine());
  record["time"] = when;
  std::ofstream out(file, std::ios::app);
  out << record.dump() << '\n';
  SHEARS_CHECK(out.good(), file.string(), "cannot record the machine");
}

}  // namespace shears
