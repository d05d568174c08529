//! `credvault plugin`: inspect and install plugin files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use crate::runtime::{PluginInfo, Runtime, WIT_PACKAGE, WIT_VERSION};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's world, WIT version, imports, size and sha256.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a plugin into the local plugin folder, so migrations can name it.
    Install {
        /// The `.wasm` file.
        file: PathBuf,
        /// The name migrations use (default: the file's name without `.wasm`).
        #[arg(long)]
        name: Option<String>,
    },
}

/// What each import family gives a plugin, and whether it is granted.
fn import_note(import: &str) -> &'static str {
    if import.starts_with("credvault:migrate/host") {
        return "capabilities (HTTP): denied unless the migration grants them";
    }
    if import.starts_with("credvault:migrate/db") {
        return "database connections: only those the migration grants, read-only unless granted write";
    }
    match import.split('/').next().unwrap_or(import) {
        "credvault:migrate" => "host interface",
        "wasi:filesystem" => "files: only directories the migration grants",
        "wasi:sockets" => "network: denied",
        "wasi:clocks" => "clock: frozen at 1970-01-01",
        "wasi:cli" => "stdio and environment: empty environment, stderr captured",
        "wasi:random" => "random numbers",
        "wasi:io" => "streams",
        _ => "unknown to this host: the plugin will not load",
    }
}

pub fn run(command: PluginCommand, runtime: &Runtime) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let info = inspect(runtime, &file)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            print(&file, &info);
            Ok(())
        }
        PluginCommand::Install { file, name } => {
            let info = inspect(runtime, &file)?;
            let dir = runtime
                .plugin_dir()
                .context("no plugin folder configured")?;
            let name = name.unwrap_or_else(|| stem(&file));
            anyhow::ensure!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                "plugin name {name:?}: use letters, digits, - and _"
            );
            crate::state::private::own_dir(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            let target = dir.join(format!("{name}.wasm"));
            std::fs::copy(&file, &target)
                .with_context(|| format!("copying to {}", target.display()))?;
            out!(
                "installed `{name}` ({}) as {}",
                info.world.as_deref().unwrap_or("?"),
                target.display()
            );
            out!(
                "use it in a migration:\n\n[[tables.transforms]]\nplugin = {name:?}\nsha256 = {:?}",
                info.sha256
            );
            Ok(())
        }
    }
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().replace('.', "_"))
        .unwrap_or_default()
}

fn inspect(runtime: &Runtime, file: &Path) -> anyhow::Result<PluginInfo> {
    let name = stem(file);
    let wasm = Runtime::read_plugin(&name, file)?;
    Ok(runtime.inspect(&name, &wasm)?)
}

fn print(file: &Path, info: &PluginInfo) {
    out!("{}", file.display());
    out!(
        "  world:    {}",
        info.world
            .as_deref()
            .unwrap_or("none (not a credvault plugin)")
    );
    let version = info.wit_version.as_deref().unwrap_or("?");
    let verdict = match (info.world.is_some(), info.speaks_host_version()) {
        (true, true) => "compatible",
        (true, false) => "INCOMPATIBLE: rebuild it with the matching credvault-sdk",
        (false, _) => "not a plugin",
    };
    out!("  wit:      {WIT_PACKAGE}@{version} (host {WIT_VERSION}: {verdict})");
    out!("  size:     {} bytes", info.size);
    out!("  sha256:   {}", info.sha256);
    out!("  imports:");
    for import in &info.imports {
        out!("    {import:<48} {}", import_note(import));
    }
}
