//! CSV files in the registry.

use std::path::Path;

use async_trait::async_trait;

use super::{CsvSink, CsvSource};
use crate::config::Endpoint;
use crate::drivers::registry::{Driver, Traits, not_mine};
use crate::drivers::{ConnectorError, Sink, Source};

/// CSV files and folders of them.
pub(crate) struct Csv;

#[async_trait]
impl Driver for Csv {
    fn name(&self) -> &'static str {
        "CSV"
    }

    fn noun(&self) -> &'static str {
        "CSV folders"
    }

    fn handles(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Csv { .. })
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
        let Endpoint::Csv {
            path,
            delimiter,
            null,
        } = e
        else {
            return Err(not_mine(self, e));
        };
        let source = CsvSource::new(base_dir.join(path), *delimiter as u8, null.clone())?;
        Ok(Box::new(source))
    }

    async fn writer(&self, e: &Endpoint, base_dir: &Path) -> Result<Box<dyn Sink>, ConnectorError> {
        let Endpoint::Csv {
            path,
            delimiter,
            null,
        } = e
        else {
            return Err(not_mine(self, e));
        };
        let sink = CsvSink::new(base_dir.join(path), *delimiter as u8, null.clone())?;
        Ok(Box::new(sink))
    }
}
