#include "apps/config_file.hpp"

#include <map>

#include "core/config_file.hpp"
#include "core/error.hpp"

namespace shears::app {

void apply_config_file(CLI::App& cli, const std::string& path) {
  std::map<const CLI::Option*, int64_t> from_file;  // the line that set each option
  for (const config::Item& item : config::read(path)) {
    const std::string where = path + ": line " + std::to_string(item.line);
    const bool own_section = item.sections.empty() || (item.sections.size() == 1 && item.sections[0] == cli.get_name());
    SHEARS_CHECK(own_section, where, "key '", item.key, "' belongs to no section of `shears ", cli.get_name(), "`");
    CLI::Option* option = cli.get_option_no_throw("--" + item.key);
    if (option == nullptr) {
      std::vector<std::string> known;
      for (const CLI::Option* o : cli.get_options())
        for (const std::string& flag : o->get_lnames()) known.push_back(flag);
      const std::string best = config::closest_key(item.key, known);
      throw Error(where + ": unknown key '" + item.key + "': expected one of the flags of `shears " + cli.get_name() +
                  "` without the leading --" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
    }
    const auto [first, fresh] = from_file.emplace(option, item.line);
    SHEARS_CHECK(fresh, where, "key '", item.key, "' was set already on line ", first->second,
                 ": each flag once (with or without a section)");
    // An empty value, `""` or `[]`, leaves the flag at its default: that is how a run's config.toml
    // writes a flag that was not given and has no default to show (limit-train, widths).
    const bool unset = item.values.empty() || item.values == std::vector<std::string>{""};
    if (!option->get_configurable()) {  // (older config.toml files list them unset: harmless)
      SHEARS_CHECK(unset || item.values == std::vector<std::string>{"false"}, where, "key '", item.key,
                   "' cannot come from a config file: give --", item.key, " on the command line");
      continue;
    }
    if (option->count() > 0 || unset) continue;  // the command line wins
    try {
      option->add_result(item.values);
      option->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(where + ": key '" + item.key + "': " + e.what());
    }
  }
}

}  // namespace shears::app
