//! Restore points in a PostgreSQL destination. A copy is `CREATE TABLE …
//! (LIKE t INCLUDING ALL EXCLUDING DEFAULTS)` filled by `INSERT … SELECT`:
//! same types, constraints, indexes and identity columns. Column defaults
//! are copied one by one, leaving out any that uses a sequence or another
//! table: `nextval('t_id_seq')` would make the copy depend on the
//! original's sequence and block a run's `DROP TABLE`.

use std::path::Path;

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::config::ServerEndpoint;
use crate::drivers::ConnectorError;
use crate::drivers::postgres::{Db, ident, open_destination};
use crate::drivers::restore::{
    Action, CATALOG, CATALOG_COLUMNS, CatalogRow, Point, PointTable, RestoreStore, insert_sql,
};

pub(crate) struct PgStore {
    db: Db,
}

/// A column as the structure check compares it: name, type with its
/// modifier, NOT NULL, generated, identity.
type PgColumn = (String, String, bool, String, String);

const COLUMNS_SQL: &str = "
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.attgenerated::text, a.attidentity::text
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// Column defaults of a table that depend on no other table or sequence.
const DEFAULTS_SQL: &str = "
SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attrdef d
JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = to_regclass($1) AND a.attgenerated = ''
  AND NOT EXISTS (SELECT 1 FROM pg_depend p
                  WHERE p.classid = 'pg_attrdef'::regclass AND p.objid = d.oid
                    AND p.refclassid = 'pg_class'::regclass AND p.refobjid <> d.adrelid)";

impl PgStore {
    pub(crate) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let store = Self {
            db: open_destination(ep, base_dir).await?,
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (point text NOT NULL, seq bigint NOT NULL, migration text NOT NULL, created_at text NOT NULL, expires_at text NOT NULL, table_name text NOT NULL, existed boolean NOT NULL, backup_table text, row_count bigint NOT NULL, checksum text, ddl text, PRIMARY KEY (point, table_name))",
            store.db.qualified(CATALOG)
        );
        sqlx::query(&create)
            .execute(&store.db.pool)
            .await
            .map_err(|e| store.db.error(&e))?;
        Ok(store)
    }

    async fn columns(
        &self,
        conn: &mut PgConnection,
        table: &str,
    ) -> Result<Vec<PgColumn>, ConnectorError> {
        sqlx::query_as(COLUMNS_SQL)
            .bind(self.db.qualified(table))
            .fetch_all(conn)
            .await
            .map_err(|e| self.db.table_error(table, &e))
    }

    /// `INSERT INTO to (cols) OVERRIDING SYSTEM VALUE SELECT cols FROM
    /// from`, over the columns that take values (not generated ones).
    async fn copy_rows(
        &self,
        conn: &mut PgConnection,
        from: &str,
        to: &str,
    ) -> Result<(), ConnectorError> {
        let columns: Vec<String> = self
            .columns(&mut *conn, to)
            .await?
            .iter()
            .filter(|c| c.3.is_empty())
            .map(|c| ident(&c.0))
            .collect();
        let columns = columns.join(", ");
        let sql = format!(
            "INSERT INTO {} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {}",
            self.db.qualified(to),
            self.db.qualified(from)
        );
        sqlx::query(&sql)
            .execute(conn)
            .await
            .map_err(|e| self.db.table_error(to, &e))?;
        Ok(())
    }

    /// Gives the copy the table's column defaults that tie it to nothing
    /// else, so a recreated table has them back.
    async fn copy_defaults(
        &self,
        conn: &mut PgConnection,
        table: &str,
        backup: &str,
    ) -> Result<(), ConnectorError> {
        let defaults: Vec<(String, String)> = sqlx::query_as(DEFAULTS_SQL)
            .bind(self.db.qualified(table))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        for (column, expr) in defaults {
            let sql = format!(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {expr}",
                self.db.qualified(backup),
                ident(&column)
            );
            self.execute(&mut *conn, table, &sql).await?;
        }
        Ok(())
    }

    /// Moves each identity column's sequence of a recreated table past the
    /// restored rows, so the next insert does not collide with them.
    async fn advance_identities(
        &self,
        conn: &mut PgConnection,
        table: &str,
    ) -> Result<(), ConnectorError> {
        let columns = self.columns(&mut *conn, table).await?;
        for (name, ..) in columns.iter().filter(|c| !c.4.is_empty()) {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), max({})) FROM {}",
                ident(name),
                self.db.qualified(table)
            );
            sqlx::query(&sql)
                .bind(self.db.qualified(table))
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db.table_error(table, &e))?;
        }
        Ok(())
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        table: &str,
        sql: &str,
    ) -> Result<(), ConnectorError> {
        sqlx::query(sql)
            .execute(conn)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        Ok(())
    }
}

#[async_trait]
impl RestoreStore for PgStore {
    fn describe(&self) -> String {
        self.db.endpoint.clone()
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, ConnectorError> {
        let sql = format!(
            "SELECT {CATALOG_COLUMNS} FROM {}",
            self.db.qualified(CATALOG)
        );
        sqlx::query_as(&sql)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))
    }

    async fn record(&self, point: &Point) -> Result<(), ConnectorError> {
        let sql = insert_sql(&self.db.qualified(CATALOG), |i| format!("${i}"));
        let fail = |e: sqlx::Error| self.db.error(&e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        for t in &point.tables {
            bind_catalog_row!(sqlx::query(&sql), point, t)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }

    async fn forget(&self, point: &str) -> Result<(), ConnectorError> {
        let sql = format!(
            "DELETE FROM {} WHERE point = $1",
            self.db.qualified(CATALOG)
        );
        sqlx::query(&sql)
            .bind(point)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        Ok(())
    }

    async fn exists(&self, table: &str) -> Result<bool, ConnectorError> {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(self.db.qualified(table))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        Ok(found.is_some())
    }

    async fn back_up(&self, table: &str, backup: &str) -> Result<Option<String>, ConnectorError> {
        let fail = |e: sqlx::Error| self.db.table_error(table, &e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        let create = format!(
            "CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING DEFAULTS)",
            self.db.qualified(backup),
            self.db.qualified(table)
        );
        self.execute(&mut tx, table, &create).await?;
        self.copy_defaults(&mut tx, table, backup).await?;
        self.copy_rows(&mut tx, table, backup).await?;
        tx.commit().await.map_err(fail)?;
        Ok(None)
    }

    async fn restore(&self, entry: &PointTable, backup: &str) -> Result<Action, ConnectorError> {
        let table = &entry.table;
        let fail = |e: sqlx::Error| self.db.table_error(table, &e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        let same = self.columns(&mut tx, table).await? == self.columns(&mut tx, backup).await?;
        let qualified = self.db.qualified(table);
        if same {
            self.execute(&mut tx, table, &format!("DELETE FROM {qualified}"))
                .await?;
            self.copy_rows(&mut tx, backup, table).await?;
        } else {
            let drop = format!("DROP TABLE IF EXISTS {qualified}");
            self.execute(&mut tx, table, &drop).await?;
            let create = format!(
                "CREATE TABLE {qualified} (LIKE {} INCLUDING ALL)",
                self.db.qualified(backup)
            );
            self.execute(&mut tx, table, &create).await?;
            self.copy_rows(&mut tx, backup, table).await?;
            self.advance_identities(&mut tx, table).await?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(if same {
            Action::Replaced
        } else {
            Action::Recreated
        })
    }

    async fn cascades(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let found: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.conname::text, c.conrelid::regclass::text,
                    CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END
             FROM pg_constraint c
             WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND c.conrelid <> c.confrelid
               AND c.confdeltype IN ('c', 'n', 'd')",
        )
        .bind(self.db.qualified(table))
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.db.table_error(table, &e))?;
        Ok(found
            .iter()
            .map(|(name, from, action)| {
                format!("foreign key `{name}` of `{from}` (ON DELETE {action})")
            })
            .collect())
    }

    async fn drop_table(&self, table: &str) -> Result<(), ConnectorError> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.db.qualified(table));
        sqlx::query(&sql)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        Ok(())
    }
}
