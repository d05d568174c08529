//! Restore points in a MariaDB/MySQL destination. A copy is `CREATE TABLE
//! … LIKE t` (columns, indexes, the sink's type comments; not foreign keys
//! or triggers) filled by `INSERT … SELECT`, in the sink's strict UTC
//! session so no value is converted on the way.

use std::path::Path;

use async_trait::async_trait;
use sqlx::mysql::MySqlConnection;
use sqlx::{Acquire, Executor};

use crate::config::ServerEndpoint;
use crate::drivers::ConnectorError;
use crate::drivers::mysql::{Server, ident, open_destination, text};
use crate::drivers::restore::{
    Action, CATALOG, CATALOG_COLUMNS, CatalogRow, Point, PointTable, RestoreStore, insert_sql,
};

pub(crate) struct MySqlStore {
    server: Server,
}

/// A column as the structure check compares it: name, type, nullable,
/// comment, extra (auto_increment, generated).
type MyColumn = [String; 5];

const COLUMNS_SQL: &str = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_COMMENT AS CHAR), CAST(EXTRA AS CHAR)
 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

fn generated(column: &MyColumn) -> bool {
    let extra = column[4].to_ascii_uppercase();
    ["VIRTUAL", "STORED", "PERSISTENT"]
        .iter()
        .any(|kind| extra.contains(kind))
}

impl MySqlStore {
    pub(crate) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let server = open_destination(ep, base_dir).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (point VARCHAR(255) NOT NULL, seq BIGINT NOT NULL, migration VARCHAR(255) NOT NULL, created_at VARCHAR(40) NOT NULL, expires_at VARCHAR(40) NOT NULL, table_name VARCHAR(255) NOT NULL, existed BOOLEAN NOT NULL, backup_table VARCHAR(64), row_count BIGINT NOT NULL, checksum VARCHAR(64), ddl LONGTEXT, PRIMARY KEY (point, table_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ident(CATALOG)
        );
        server
            .pool
            .execute(create.as_str())
            .await
            .map_err(|e| server.error(e))?;
        Ok(Self { server })
    }

    fn table_error(&self, table: &str, err: sqlx::Error) -> ConnectorError {
        let mut e = self.server.error(err);
        e.message = format!("table `{table}`: {}", e.message);
        e
    }

    async fn columns(
        &self,
        conn: &mut MySqlConnection,
        table: &str,
    ) -> Result<Vec<MyColumn>, ConnectorError> {
        let rows = sqlx::query(COLUMNS_SQL)
            .bind(table)
            .fetch_all(conn)
            .await
            .map_err(|e| self.table_error(table, e))?;
        Ok(rows
            .iter()
            .map(|r| std::array::from_fn(|i| text(r, i).unwrap_or_default()))
            .collect())
    }

    /// `INSERT INTO to (cols) SELECT cols FROM from`, over the columns that
    /// take values (not generated ones).
    async fn copy_rows(
        &self,
        conn: &mut MySqlConnection,
        from: &str,
        to: &str,
    ) -> Result<(), ConnectorError> {
        let columns: Vec<String> = self
            .columns(&mut *conn, to)
            .await?
            .iter()
            .filter(|c| !generated(c))
            .map(|c| ident(&c[0]))
            .collect();
        let columns = columns.join(", ");
        let sql = format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {}",
            ident(to),
            ident(from)
        );
        self.execute(conn, to, &sql).await
    }

    async fn execute(
        &self,
        conn: &mut MySqlConnection,
        table: &str,
        sql: &str,
    ) -> Result<(), ConnectorError> {
        conn.execute(sql)
            .await
            .map_err(|e| self.table_error(table, e))?;
        Ok(())
    }
}

/// A catalog row read as text (the way every MySQL query here reads, so
/// server versions' type quirks do not matter).
fn catalog_row(r: &sqlx::mysql::MySqlRow) -> CatalogRow {
    let s = |i| text(r, i).unwrap_or_default();
    let n = |i| text(r, i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    (
        s(0),
        n(1),
        s(2),
        s(3),
        s(4),
        s(5),
        n(6) != 0,
        text(r, 7),
        n(8),
        text(r, 9),
        text(r, 10),
    )
}

#[async_trait]
impl RestoreStore for MySqlStore {
    fn describe(&self) -> String {
        self.server.endpoint.clone()
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, ConnectorError> {
        let columns: Vec<String> = CATALOG_COLUMNS
            .split(", ")
            .map(|c| format!("CAST({c} AS CHAR)"))
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), ident(CATALOG));
        let rows = sqlx::query(&sql)
            .fetch_all(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(rows.iter().map(catalog_row).collect())
    }

    async fn record(&self, point: &Point) -> Result<(), ConnectorError> {
        let sql = insert_sql(&ident(CATALOG), |_| "?".into());
        let fail = |e| self.server.error(e);
        let mut tx = self.server.pool.begin().await.map_err(fail)?;
        for t in &point.tables {
            bind_catalog_row!(sqlx::query(&sql), point, t)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }

    async fn forget(&self, point: &str) -> Result<(), ConnectorError> {
        let sql = format!("DELETE FROM {} WHERE point = ?", ident(CATALOG));
        sqlx::query(&sql)
            .bind(point)
            .execute(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(())
    }

    async fn exists(&self, table: &str) -> Result<bool, ConnectorError> {
        let mut conn = self
            .server
            .pool
            .acquire()
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(!self.columns(&mut conn, table).await?.is_empty())
    }

    async fn back_up(&self, table: &str, backup: &str) -> Result<Option<String>, ConnectorError> {
        let mut conn = self
            .server
            .pool
            .acquire()
            .await
            .map_err(|e| self.server.error(e))?;
        let create = format!("CREATE TABLE {} LIKE {}", ident(backup), ident(table));
        self.execute(&mut conn, table, &create).await?;
        self.copy_rows(&mut conn, table, backup).await?;
        Ok(None)
    }

    async fn restore(&self, entry: &PointTable, backup: &str) -> Result<Action, ConnectorError> {
        let table = &entry.table;
        let mut conn = self
            .server
            .pool
            .acquire()
            .await
            .map_err(|e| self.server.error(e))?;
        let same = self.columns(&mut conn, table).await? == self.columns(&mut conn, backup).await?;
        if same {
            let mut tx = conn.begin().await.map_err(|e| self.server.error(e))?;
            self.execute(&mut tx, table, &format!("DELETE FROM {}", ident(table)))
                .await?;
            self.copy_rows(&mut tx, backup, table).await?;
            tx.commit().await.map_err(|e| self.server.error(e))?;
            return Ok(Action::Replaced);
        }
        // DDL commits on its own in MySQL: the table is recreated, then
        // filled in one statement.
        let drop = format!("DROP TABLE IF EXISTS {}", ident(table));
        self.execute(&mut conn, table, &drop).await?;
        let create = format!("CREATE TABLE {} LIKE {}", ident(table), ident(backup));
        self.execute(&mut conn, table, &create).await?;
        self.copy_rows(&mut conn, backup, table).await?;
        Ok(Action::Recreated)
    }

    async fn cascades(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let sql = "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(DELETE_RULE AS CHAR)
                   FROM information_schema.REFERENTIAL_CONSTRAINTS
                   WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = ? AND TABLE_NAME <> REFERENCED_TABLE_NAME
                     AND DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT')";
        let rows = sqlx::query(sql)
            .bind(table)
            .fetch_all(&self.server.pool)
            .await
            .map_err(|e| self.table_error(table, e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let [name, from, action] = [0, 1, 2].map(|i| text(r, i).unwrap_or_default());
                format!("foreign key `{name}` of `{from}` (ON DELETE {action})")
            })
            .collect())
    }

    async fn drop_table(&self, table: &str) -> Result<(), ConnectorError> {
        let sql = format!("DROP TABLE IF EXISTS {}", ident(table));
        self.server
            .pool
            .execute(sql.as_str())
            .await
            .map_err(|e| self.table_error(table, e))?;
        Ok(())
    }
}
