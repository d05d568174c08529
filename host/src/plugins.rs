//! Built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary, so `plugin = "expr"` needs no file.

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
