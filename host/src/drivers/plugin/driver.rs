//! Wasm source and sink plugins in the registry.

use std::path::Path;

use async_trait::async_trait;

use super::{PluginSink, PluginSource};
use crate::config::Endpoint;
use crate::drivers::registry::{Driver, Traits, not_mine};
use crate::drivers::{ConnectorError, Sink, Source};

/// A wasm source or sink plugin.
pub(crate) struct Plugin;

#[async_trait]
impl Driver for Plugin {
    fn name(&self) -> &'static str {
        "plugin"
    }

    fn noun(&self) -> &'static str {
        "plugin sinks"
    }

    fn handles(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Plugin(_))
    }

    fn traits(&self) -> Traits {
        Traits {
            keeps_negative_zero: true,
            ..Traits::default()
        }
    }

    async fn reader(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let Endpoint::Plugin(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(PluginSource::open(ep, base_dir).await?))
    }

    async fn writer(&self, e: &Endpoint, base_dir: &Path) -> Result<Box<dyn Sink>, ConnectorError> {
        let Endpoint::Plugin(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(PluginSink::open(ep, base_dir).await?))
    }
}
