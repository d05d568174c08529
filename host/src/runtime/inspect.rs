//! What a plugin file is: its world, the WIT version it was built against,
//! what it imports, its size and digest — read without running it.

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::{Runtime, RuntimeError};

/// The WIT package this host implements.
pub const WIT_PACKAGE: &str = "credvault:migrate";
/// Its version.
pub const WIT_VERSION: &str = "0.2.1";

/// A plugin file's description.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// `transform-plugin`, `source-plugin` or `sink-plugin`; `None` if it
    /// exports none of the credvault interfaces.
    pub world: Option<String>,
    /// The `credvault:migrate` version it was built against.
    pub wit_version: Option<String>,
    /// Everything it imports, e.g. `wasi:filesystem/preopens@0.2.6`.
    pub imports: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Hex SHA-256 of plugin bytes, as pinned in migration files.
pub fn sha256_hex(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl PluginInfo {
    /// Whether it was built against a WIT version this host speaks.
    pub fn speaks_host_version(&self) -> bool {
        self.wit_version
            .as_deref()
            .is_some_and(|v| same_minor(v, WIT_VERSION))
    }

    /// Whether this host can run it as `world`.
    pub fn compatible(&self, plugin: &str, world: &'static str) -> Result<(), RuntimeError> {
        let incompatible = |message: String| RuntimeError::Invalid {
            plugin: plugin.to_string(),
            world,
            message,
        };
        match (self.world.as_deref(), self.wit_version.as_deref()) {
            (Some(found), _) if found != world => Err(incompatible(format!(
                "it is a {found}, not a {world}; use it where a {} belongs",
                found.trim_end_matches("-plugin")
            ))),
            (Some(_), Some(version)) if !same_minor(version, WIT_VERSION) => {
                Err(incompatible(format!(
                    "it was built against {WIT_PACKAGE}@{version}, and this host speaks {WIT_PACKAGE}@{WIT_VERSION}; rebuild it with the matching credvault-sdk"
                )))
            }
            (None, _) => Err(incompatible(format!(
                "it exports no {WIT_PACKAGE} interface (it exports: {}); is it a credvault plugin?",
                if self.exports.is_empty() {
                    "nothing".to_string()
                } else {
                    self.exports.join(", ")
                }
            ))),
            _ => Ok(()),
        }
    }
}

/// Component-model semver: 0.x.* versions are compatible within a minor.
fn same_minor(a: &str, b: &str) -> bool {
    let key = |v: &str| {
        let parts: Vec<&str> = v.split('.').collect();
        match parts.as_slice() {
            ["0", minor, ..] => format!("0.{minor}"),
            [major, ..] => major.to_string(),
            [] => String::new(),
        }
    };
    key(a) == key(b)
}

impl Runtime {
    /// Describes a plugin without instantiating it.
    pub fn inspect(&self, plugin: &str, wasm: &[u8]) -> Result<PluginInfo, RuntimeError> {
        let component =
            Component::new(&self.engine, wasm).map_err(|err| RuntimeError::Invalid {
                plugin: plugin.to_string(),
                world: "wasm",
                message: format!("{err:#}"),
            })?;
        Ok(self.describe(&component, wasm))
    }

    pub(super) fn describe(&self, component: &Component, wasm: &[u8]) -> PluginInfo {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let ours = exports.iter().find_map(|e| {
            let rest = e.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            let world = match interface {
                "transform" => "transform-plugin",
                "source" => "source-plugin",
                "sink" => "sink-plugin",
                _ => return None,
            };
            Some((world.to_string(), version.to_string()))
        });
        PluginInfo {
            world: ours.as_ref().map(|(w, _)| w.clone()),
            wit_version: ours.map(|(_, v)| v).filter(|v| !v.is_empty()),
            imports,
            exports,
            size: wasm.len(),
            sha256: sha256_hex(wasm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_minor;

    fn info(world: Option<&str>, version: &str) -> super::PluginInfo {
        super::PluginInfo {
            world: world.map(String::from),
            wit_version: Some(version.into()),
            imports: vec![],
            exports: vec!["other:thing/run@1.0.0".into()],
            size: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn incompatible_plugins_are_refused_with_a_reason() {
        let newer = info(Some("transform-plugin"), "0.1.0")
            .compatible("p", "transform-plugin")
            .unwrap_err();
        assert!(newer.to_string().contains("built against credvault:migrate@0.1.0, and this host speaks credvault:migrate@0.2.1"), "{newer}");
        let sink = info(Some("sink-plugin"), "0.2.0")
            .compatible("p", "transform-plugin")
            .unwrap_err();
        assert!(
            sink.to_string()
                .contains("it is a sink-plugin, not a transform-plugin"),
            "{sink}"
        );
        let other = info(None, "")
            .compatible("p", "transform-plugin")
            .unwrap_err();
        assert!(
            other.to_string().contains(
                "exports no credvault:migrate interface (it exports: other:thing/run@1.0.0)"
            ),
            "{other}"
        );
        assert!(
            info(Some("transform-plugin"), "0.2.2")
                .compatible("p", "transform-plugin")
                .is_ok()
        );
    }

    #[test]
    fn versions_match_by_component_model_semver() {
        assert!(same_minor("0.1.0", "0.1.3"));
        assert!(!same_minor("0.2.0", "0.1.0"));
        assert!(same_minor("1.2.0", "1.0.0"));
    }
}
