//! Builds wasm32-wasip2 components of this workspace from a build script, so
//! no `.wasm` is ever checked in and every plugin or test guest is rebuilt
//! when its source changes.
//!
//! Components go to their own target folder (`target/wasm`): a nested cargo
//! in the outer build's folder would wait forever on its lock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile plugins are built with (release, stripped).
pub const PROFILE: &str = "plugin";

/// Builds `packages` (workspace package names) with the `plugin` profile and returns
/// the path of each one's component, in the same order. `watch` lists
/// folders (relative to the workspace root) whose changes trigger a rebuild.
///
/// # Panics
/// When the build fails; a build script has no better way to report it.
pub fn build_components(workspace: &Path, packages: &[&str], watch: &[&str]) -> Vec<PathBuf> {
    for dir in watch.iter().chain(&["Cargo.lock", "wit"]) {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    require_target();
    let target_dir = target_dir(workspace);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build wasm components");
    assert!(
        status.success(),
        "building wasm components {packages:?} failed (see the cargo output above)"
    );
    packages
        .iter()
        .map(|p| {
            let file = target_dir
                .join(TARGET)
                .join(PROFILE)
                .join(format!("{}.wasm", p.replace('-', "_")));
            assert!(file.exists(), "{} was not produced", file.display());
            file
        })
        .collect()
}

/// `target/wasm` beside the outer build's target folder.
fn target_dir(workspace: &Path) -> PathBuf {
    let outer = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    outer.join("wasm")
}

fn require_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists());
    assert!(
        installed,
        "the Rust target {TARGET} is not installed: run `rustup target add {TARGET}` (scripts/setup does this)"
    );
}
