//! Built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary, so `plugin = "expr"` needs no file.

use std::borrow::Cow;
use std::path::Path;

use crate::runtime::{Runtime, sha256_hex};

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

/// Finds a plugin's bytes: a built-in name, a path ending in `.wasm`
/// (relative to `base_dir`), or a name installed with `credvault plugin
/// install`. Returns the name it is known by in messages, and its bytes,
/// checked against `pin` when given.
pub fn locate(
    plugin: &str,
    base_dir: &Path,
    runtime: &Runtime,
    pin: Option<&str>,
) -> Result<(String, Cow<'static, [u8]>), String> {
    let (name, wasm) = find(plugin, base_dir, runtime)?;
    if let Some(pin) = pin {
        let actual = sha256_hex(&wasm);
        if !actual.eq_ignore_ascii_case(pin.trim()) {
            return Err(format!(
                "the plugin's sha256 is {actual} but the migration pins {pin}: the file changed; check where it came from, then update `sha256`"
            ));
        }
    }
    Ok((name, wasm))
}

fn find(
    plugin: &str,
    base_dir: &Path,
    runtime: &Runtime,
) -> Result<(String, Cow<'static, [u8]>), String> {
    if let Some(wasm) = builtin(plugin) {
        return Ok((plugin.to_string(), Cow::Borrowed(wasm)));
    }
    let path = match plugin.ends_with(".wasm") {
        true => base_dir.join(plugin),
        false => runtime.installed_plugin(plugin).ok_or_else(|| {
            format!(
                "no built-in or installed plugin `{plugin}` (built-ins: {}); give a path ending in .wasm, or install it with `credvault plugin install`",
                BUILTIN_NAMES.join(", ")
            )
        })?,
    };
    let name = path
        .file_name()
        .map_or(plugin.to_string(), |n| n.to_string_lossy().into_owned());
    let wasm = Runtime::read_plugin(&name, &path).map_err(|e| e.to_string())?;
    Ok((name, Cow::Owned(wasm)))
}
