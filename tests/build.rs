//! Builds the test guests and the example plugin, and tells the tests where
//! they are: no `.wasm` is checked in, and no guest exists without a test.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest)
        .parent()
        .expect("tests/ sits in the workspace");
    let guests = [
        ("credvault-hostile-guest", "HOSTILE"),
        ("credvault-hostile-source", "HOSTILE_SOURCE"),
        ("credvault-legacy-guest", "LEGACY_0_2_0"),
        ("credvault-example-add-suffix", "ADD_SUFFIX"),
        ("credvault-example-db-lookup", "DB_LOOKUP"),
        ("credvault-generator", "GENERATOR"),
        ("credvault-csv-source", "CSV_SOURCE"),
        ("credvault-csv-sink", "CSV_SINK"),
        ("credvault-http-source", "HTTP_SOURCE"),
    ];
    let packages: Vec<&str> = guests.iter().map(|(p, _)| *p).collect();
    let built = credvault_wasm_build::build_components(
        workspace,
        &packages,
        &[
            "tests/guests",
            "plugins/examples",
            "plugins/connectors",
            "sdk",
        ],
    );
    let mut code = String::new();
    for ((_, name), path) in guests.iter().zip(&built) {
        code.push_str(&format!(
            "/// A test component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("guests.rs"), code).expect("writing guests.rs");
}
