// `--config FILE` for a subcommand: a file in the format of core/config_file.hpp whose keys are the
// subcommand's long flags (`batch-size = 64`; a [train] section or "train." prefixes are accepted
// too), such as the config.toml of a run. Flags given on the command line win over the file.
// CLI11's own subcommand config handling ignores such files in the Debian version (2.1.2), so the
// file is applied after parsing.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace shears::app {

void apply_config_file(CLI::App& cli, const std::string& path);

}  // namespace shears::app
