//! Built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary, so `plugin = "expr"` needs no file.

use std::borrow::Cow;
use std::path::Path;

use crate::runtime::{Runtime, RuntimeError, sha256_hex};

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The wasm component of a built-in plugin, by the name used in migration files.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    match name {
        "expr" => Some(EXPR),
        _ => None,
    }
}

/// The names of every built-in plugin.
pub const BUILTIN_NAMES: [&str; 1] = ["expr"];

/// Why a plugin could not be found or is not the one pinned.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The name is neither built in, nor installed, nor a `.wasm` path.
    #[error(
        "no built-in or installed plugin `{plugin}` (built-ins: {}); give a path ending in .wasm, or install it with `credvault plugin install`",
        BUILTIN_NAMES.join(", ")
    )]
    Unknown {
        /// The name asked for.
        plugin: String,
    },
    /// The plugin's file could not be read.
    #[error(transparent)]
    Read(#[from] RuntimeError),
    /// The plugin is not the one the migration pins.
    #[error(
        "the plugin's sha256 is {actual} but the migration pins {pin}: the file changed; check where it came from, then update `sha256`"
    )]
    Pin {
        /// The plugin's sha256.
        actual: String,
        /// The pinned one.
        pin: String,
    },
}

/// Finds a plugin's bytes: a built-in name, a path ending in `.wasm`
/// (relative to `base_dir`), or a name installed with `credvault plugin
/// install`. Returns the name it is known by in messages, and its bytes,
/// checked against `pin` when given.
pub fn locate(
    plugin: &str,
    base_dir: &Path,
    runtime: &Runtime,
    pin: Option<&str>,
) -> Result<(String, Cow<'static, [u8]>), LocateError> {
    let (name, wasm) = find(plugin, base_dir, runtime)?;
    if let Some(pin) = pin {
        let actual = sha256_hex(&wasm);
        if !actual.eq_ignore_ascii_case(pin.trim()) {
            let pin = pin.to_string();
            return Err(LocateError::Pin { actual, pin });
        }
    }
    Ok((name, wasm))
}

fn find(
    plugin: &str,
    base_dir: &Path,
    runtime: &Runtime,
) -> Result<(String, Cow<'static, [u8]>), LocateError> {
    if let Some(wasm) = builtin(plugin) {
        return Ok((plugin.to_string(), Cow::Borrowed(wasm)));
    }
    let path = match plugin.ends_with(".wasm") {
        true => base_dir.join(plugin),
        false => runtime
            .installed_plugin(plugin)
            .ok_or_else(|| LocateError::Unknown {
                plugin: plugin.to_string(),
            })?,
    };
    let name = path
        .file_name()
        .map_or(plugin.to_string(), |n| n.to_string_lossy().into_owned());
    let wasm = Runtime::read_plugin(&name, &path)?;
    Ok((name, Cow::Owned(wasm)))
}
