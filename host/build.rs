//! Builds the built-in plugins and embeds them in the `credvault` binary.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest)
        .parent()
        .expect("host/ sits in the workspace");
    let built = credvault_wasm_build::build_components(
        workspace,
        &["credvault-expr"],
        &["plugins/expr", "sdk"],
    );
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let code = format!(
        "/// The expression transform component.\npub const EXPR: &[u8] = include_bytes!({:?});\n",
        built[0]
    );
    std::fs::write(Path::new(&out).join("builtin_plugins.rs"), code)
        .expect("writing builtin_plugins.rs");
}
