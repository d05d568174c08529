//! Restore points in an SQLite destination. A copy is `CREATE TABLE … AS
//! SELECT` (same column affinities, so every stored value comes back as
//! it was); the original CREATE TABLE, INDEX and TRIGGER statements are
//! kept to recreate a table that a run dropped or replaced.

use std::path::Path;

use async_trait::async_trait;
use sqlx::{SqliteConnection, SqlitePool};

use crate::drivers::ConnectorError;
use crate::drivers::restore::{
    Action, CATALOG, CATALOG_COLUMNS, CatalogRow, Point, PointTable, RestoreStore, insert_sql,
};
use crate::drivers::sqlite::{ident, writer_pool};

pub(crate) struct SqliteStore {
    endpoint: String,
    pool: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(path: &Path) -> Result<Self, ConnectorError> {
        let store = Self {
            endpoint: format!("destination sqlite {}", path.display()),
            pool: writer_pool(path).await?,
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {CATALOG} (point TEXT NOT NULL, seq INTEGER NOT NULL, migration TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, table_name TEXT NOT NULL, existed BOOLEAN NOT NULL, backup_table TEXT, row_count INTEGER NOT NULL, checksum TEXT, ddl TEXT, PRIMARY KEY (point, table_name))"
        );
        sqlx::query(&create)
            .execute(&store.pool)
            .await
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    fn error(&self, err: sqlx::Error) -> ConnectorError {
        self.failed("", err)
    }

    /// A driver error, its text after `context`.
    fn failed(&self, context: &str, err: sqlx::Error) -> ConnectorError {
        ConnectorError::new(&self.endpoint, format!("{context}{err}")).because(&err)
    }

    /// A failure no driver error caused.
    fn refusal(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(&self.endpoint, message)
    }

    /// The statement that created `table`, if it exists.
    async fn table_sql(&self, table: &str) -> Result<Option<String>, ConnectorError> {
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }
}

/// The columns of `table` a row can be inserted into (not generated ones),
/// quoted and joined.
async fn insertable(conn: &mut SqliteConnection, table: &str) -> Result<String, sqlx::Error> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid")
            .bind(table)
            .fetch_all(conn)
            .await?;
    let quoted: Vec<String> = names.iter().map(|n| ident(n)).collect();
    Ok(quoted.join(", "))
}

async fn copy_rows(conn: &mut SqliteConnection, from: &str, to: &str) -> Result<(), sqlx::Error> {
    let columns = insertable(&mut *conn, to).await?;
    let sql = format!(
        "INSERT INTO {} ({columns}) SELECT {columns} FROM {}",
        ident(to),
        ident(from)
    );
    sqlx::query(&sql).execute(conn).await?;
    Ok(())
}

#[async_trait]
impl RestoreStore for SqliteStore {
    fn describe(&self) -> String {
        self.endpoint.clone()
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, ConnectorError> {
        sqlx::query_as(&format!("SELECT {CATALOG_COLUMNS} FROM {CATALOG}"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }

    async fn record(&self, point: &Point) -> Result<(), ConnectorError> {
        let sql = insert_sql(CATALOG, |_| "?".into());
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        for t in &point.tables {
            bind_catalog_row!(sqlx::query(&sql), point, t)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn forget(&self, point: &str) -> Result<(), ConnectorError> {
        sqlx::query(&format!("DELETE FROM {CATALOG} WHERE point = ?"))
            .bind(point)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn exists(&self, table: &str) -> Result<bool, ConnectorError> {
        Ok(self.table_sql(table).await?.is_some())
    }

    async fn back_up(&self, table: &str, backup: &str) -> Result<Option<String>, ConnectorError> {
        let ddl: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_schema WHERE tbl_name = ? AND sql IS NOT NULL
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let sql = format!(
            "CREATE TABLE {} AS SELECT * FROM {}",
            ident(backup),
            ident(table)
        );
        sqlx::query(&sql)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(&format!("copying table `{table}`: "), e))?;
        Ok(Some(
            serde_json::to_string(&ddl).expect("strings serialize"),
        ))
    }

    async fn restore(&self, entry: &PointTable, backup: &str) -> Result<Action, ConnectorError> {
        let table = &entry.table;
        let ddl: Vec<String> = entry
            .ddl
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let Some((create, others)) = ddl.split_first() else {
            return Err(self.refusal(format!(
                "restore point of `{table}` lacks its CREATE statement; it cannot be restored"
            )));
        };
        let same = self.table_sql(table).await?.as_ref() == Some(create);
        let context = format!("restoring table `{table}`: ");
        let fail = |e: sqlx::Error| self.failed(&context, e);
        let mut tx = self.pool.begin().await.map_err(fail)?;
        if same {
            let delete = format!("DELETE FROM {}", ident(table));
            sqlx::query(&delete).execute(&mut *tx).await.map_err(fail)?;
            copy_rows(&mut tx, backup, table).await.map_err(fail)?;
        } else {
            let drop = format!("DROP TABLE IF EXISTS {}", ident(table));
            sqlx::query(&drop).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query(create).execute(&mut *tx).await.map_err(fail)?;
            copy_rows(&mut tx, backup, table).await.map_err(fail)?;
            for statement in others {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
        }
        tx.commit().await.map_err(fail)?;
        Ok(if same {
            Action::Replaced
        } else {
            Action::Recreated
        })
    }

    async fn cascades(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, f.on_delete FROM sqlite_schema m, pragma_foreign_key_list(m.name) f
             WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE AND m.name <> ?1
               AND f.on_delete IN ('CASCADE', 'SET NULL', 'SET DEFAULT')",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(found
            .iter()
            .map(|(from, action)| format!("the foreign key of `{from}` (ON DELETE {action})"))
            .collect())
    }

    async fn drop_table(&self, table: &str) -> Result<(), ConnectorError> {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", ident(table)))
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(&format!("dropping table `{table}`: "), e))?;
        Ok(())
    }
}
