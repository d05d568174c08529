//! MySQL (placeholder until the connector lands).

use std::path::Path;

use super::ConnectorError;
use crate::config::ServerEndpoint;

pub(super) fn unavailable(_ep: &ServerEndpoint, _base: &Path) -> ConnectorError {
    ConnectorError::new("mysql", "the MySQL connector is not built yet")
}
