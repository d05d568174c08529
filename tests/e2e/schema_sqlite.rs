//! The SQLite source's schema model (issue 18, introspection), through the
//! library API (`Source::schema` on the source a migration opens), against
//! an application-style schema in a throwaway SQLite file.

use std::path::Path;

use credvault::config::Migration;
use credvault::drivers::open_source;
use credvault::model::schema::{
    DefaultKind, Deferrable, FkAction, Generation, IndexKey, Schema, TableDef, TypeKind,
};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::servers::block_on;

/// An application's schema: AUTOINCREMENT and plain rowid-alias keys, a
/// composite key, a unique constraint, a partial, an expression and a DESC
/// index, named and unnamed checks, foreign keys that cascade and set
/// NULL (one naming no columns), literal, NULL, current-time and
/// expression defaults, a stored and a virtual generated column, a view and
/// a trigger; with rows, one customer deleted so the AUTOINCREMENT counter
/// is past the largest id left.
const APP: &str = r#"
CREATE TABLE customers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email VARCHAR(120) NOT NULL,
  name TEXT NOT NULL DEFAULT 'x' COLLATE NOCASE,
  visits INT NOT NULL DEFAULT 0,
  note TEXT DEFAULT NULL,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  code TEXT DEFAULT (lower(hex(randomblob(4)))),
  balance NUMERIC(12,2) NOT NULL DEFAULT 0 CONSTRAINT balance_not_negative CHECK (balance >= 0),
  email_domain TEXT GENERATED ALWAYS AS (substr(email, instr(email, '@') + 1)) STORED,
  name_length INT AS (length(name)),
  CHECK (length(email) > 3)
);
CREATE UNIQUE INDEX customers_lower_email ON customers (lower(email));
CREATE INDEX customers_created ON customers (created_at DESC, id);
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL UNIQUE,
  price NUMERIC(10,2) NOT NULL CHECK (price >= 0)
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid'))
);
CREATE UNIQUE INDEX orders_one_pending ON orders (customer_id) WHERE status = 'pending';
CREATE TABLE order_lines (
  order_id INTEGER NOT NULL,
  line INTEGER NOT NULL,
  product_id INTEGER,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, line),
  CONSTRAINT lines_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
    DEFERRABLE INITIALLY DEFERRED,
  FOREIGN KEY (product_id) REFERENCES products ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE VIEW paid_orders AS
  SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id
  WHERE o.status = 'paid';
CREATE TRIGGER orders_visit AFTER INSERT ON orders
BEGIN UPDATE customers SET visits = visits + 1 WHERE id = NEW.customer_id; END;
INSERT INTO customers (email) VALUES ('ann@example.com'), ('bob@example.com'), ('cy@example.com');
DELETE FROM customers WHERE id = 3;
INSERT INTO products (sku, price) VALUES ('A-1', 9.99);
INSERT INTO orders (customer_id, status) VALUES (1, 'paid'), (2, 'pending');
INSERT INTO order_lines VALUES (1, 1, 1, 2);
"#;

/// Builds `APP` in `path`, then reads the model the migration's SQLite
/// source gives of every table it discovers there.
fn read_schema(path: &Path) -> Schema {
    build(path);
    read_tables(path, |_| true)
}

/// Builds `APP` in a new SQLite file at `path`.
fn build(path: &Path) {
    block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("the file opens");
        sqlx::raw_sql(APP)
            .execute(&mut conn)
            .await
            .expect("the schema builds");
        conn.close().await.expect("closes");
    });
}

/// The model of the tables in `path` that `wanted` keeps.
fn read_tables(path: &Path, wanted: impl Fn(&str) -> bool) -> Schema {
    let text = format!(
        "name = \"schema-read\"\n[source]\ntype = \"sqlite\"\npath = {:?}\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"customers\"\n",
        path.display().to_string()
    );
    let m = Migration::parse(&text, Path::new("schema.toml"), ".".into()).expect("a migration");
    block_on(async {
        let source = open_source(&m).await.expect("the source opens");
        let tables: Vec<_> = source
            .discover()
            .await
            .expect("discover")
            .into_iter()
            .filter(|t| wanted(&t.name))
            .collect();
        source
            .schema(&tables)
            .await
            .expect("the schema reads")
            .expect("SQLite says its schema")
    })
}

fn table<'a>(schema: &'a Schema, name: &str) -> &'a TableDef {
    schema
        .table(name)
        .unwrap_or_else(|| panic!("table `{name}` in {:#?}", schema.tables))
}

#[test]
fn the_sqlite_source_reads_every_part_of_an_applications_schema() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let schema = read_schema(&dir.path().join("app.db"));
    assert_eq!(schema.dialect, "sqlite");
    let mut names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["customers", "order_lines", "orders", "products"]);

    // Declared types verbatim, kinds by affinity and name.
    let customers = table(&schema, "customers");
    let column = |t: &TableDef, c: &str| {
        t.column(c)
            .unwrap_or_else(|| panic!("column `{}.{c}` in {:#?}", t.name, t.columns))
            .clone()
    };
    for (c, sql, kind) in [
        (
            "id",
            "INTEGER",
            TypeKind::Int {
                bytes: 8,
                unsigned: false,
            },
        ),
        (
            "email",
            "VARCHAR(120)",
            TypeKind::Char {
                length: Some(120),
                varying: true,
            },
        ),
        ("name", "TEXT", TypeKind::Text),
        (
            "created_at",
            "DATETIME",
            TypeKind::Timestamp {
                tz: false,
                precision: None,
            },
        ),
        (
            "balance",
            "NUMERIC(12,2)",
            TypeKind::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ),
        ("email_domain", "TEXT", TypeKind::Text),
    ] {
        let col = column(customers, c);
        assert_eq!(
            (col.native.sql.as_str(), col.native.kind),
            (sql, kind),
            "{c}"
        );
    }

    // NOT NULL, and the defaults: literal, NULL, current time, expression.
    assert!(column(customers, "email").not_null);
    assert_eq!(
        column(customers, "name").collation.as_deref(),
        Some("NOCASE")
    );
    assert_eq!(column(customers, "email").collation, None);
    assert!(!column(customers, "note").not_null);
    assert!(
        column(customers, "id").not_null,
        "a rowid alias is never NULL"
    );
    let default = |t: &TableDef, c: &str| column(t, c).default.expect("a default");
    let literal = |v: &str| DefaultKind::Literal {
        value: Some(v.into()),
    };
    assert_eq!(default(customers, "visits").sql, "0");
    assert_eq!(default(customers, "visits").kind, literal("0"));
    assert_eq!(default(customers, "name").sql, "'x'");
    assert_eq!(default(customers, "name").kind, literal("x"));
    assert_eq!(
        default(customers, "note").kind,
        DefaultKind::Literal { value: None }
    );
    assert_eq!(default(customers, "note").sql, "NULL");
    assert_eq!(default(customers, "created_at").sql, "CURRENT_TIMESTAMP");
    assert_eq!(default(customers, "created_at").kind, DefaultKind::Now);
    let code = default(customers, "code");
    assert_eq!(
        (code.sql.as_str(), code.kind),
        ("(lower(hex(randomblob(4))))", DefaultKind::Expression),
        "an expression keeps the parentheses DEFAULT needs"
    );
    assert_eq!(column(customers, "email").default, None);
    let generated = column(customers, "email_domain");
    assert_eq!(
        generated.generated.as_deref(),
        Some("substr(email, instr(email, '@') + 1)")
    );
    assert_eq!(generated.default, None);
    assert_eq!(
        column(customers, "name_length").generated.as_deref(),
        Some("length(name)"),
        "a VIRTUAL generated column"
    );
    assert_eq!(column(customers, "email").generated, None);

    // AUTOINCREMENT with its counter past every id handed out (3, though
    // customer 3 is gone); a plain rowid alias; no identity elsewhere.
    let identity = |t: &TableDef, c: &str| column(t, c).identity.expect("an identity");
    let auto = identity(customers, "id");
    assert_eq!(auto.generation, Generation::AutoIncrement);
    let counter = auto.sequence.expect("its sqlite_sequence counter");
    assert_eq!(counter.last_value, Some(3));
    assert_eq!(
        counter.owned_by.map(|o| (o.table, o.column)),
        Some(("customers".to_string(), "id".to_string()))
    );
    let orders = table(&schema, "orders");
    let auto = identity(orders, "id");
    assert_eq!(auto.generation, Generation::AutoIncrement);
    assert_eq!(auto.sequence.expect("its counter").last_value, Some(2));
    let products = table(&schema, "products");
    let alias = identity(products, "id");
    assert_eq!(
        (alias.generation, alias.sequence),
        (Generation::ByDefault, None)
    );
    let lines = table(&schema, "order_lines");
    assert_eq!(column(lines, "order_id").identity, None);
    assert_eq!(column(customers, "visits").identity, None);
    assert!(schema.sequences.is_empty());

    // Keys: single, composite, unique.
    let key = customers.primary_key.as_ref().expect("a primary key");
    assert_eq!(
        (key.name.as_str(), key.columns.clone()),
        ("customers_pkey", vec!["id".to_string()])
    );
    let key = lines.primary_key.as_ref().expect("a composite key");
    assert_eq!(key.columns, ["order_id", "line"]);
    assert_eq!(key.definition, "PRIMARY KEY (order_id, line)");
    assert!(
        lines.indexes.is_empty() && lines.uniques.is_empty(),
        "the key's own index is the key: {:#?}",
        lines.indexes
    );
    assert_eq!(products.uniques.len(), 1, "{:#?}", products.uniques);
    let unique = &products.uniques[0];
    assert_eq!(
        (unique.name.as_str(), unique.columns.clone()),
        ("products_sku_key", vec!["sku".to_string()])
    );
    assert_eq!(unique.definition, "UNIQUE (sku)");
    assert!(products.indexes.is_empty());

    // Checks, named as written or as PostgreSQL would, kept verbatim.
    let check = customers
        .check("balance_not_negative")
        .expect("the named check");
    assert_eq!(check.expression, "balance >= 0");
    assert_eq!(check.definition, "CHECK (balance >= 0)");
    assert_eq!(check.columns, ["balance"]);
    let check = customers
        .check("customers_email_check")
        .expect("the table check");
    assert_eq!(check.expression, "length(email) > 3");
    assert_eq!(check.columns, ["email"]);
    assert_eq!(customers.checks.len(), 2);
    assert_eq!(
        orders
            .check("orders_status_check")
            .expect("status check")
            .expression,
        "status IN ('pending', 'paid')"
    );
    assert_eq!(
        lines
            .check("order_lines_quantity_check")
            .expect("quantity check")
            .expression,
        "quantity > 0"
    );

    // Foreign keys with their actions, in the order they were declared.
    let cascade = orders
        .foreign_key("orders_customer_id_fkey")
        .expect("orders → customers");
    assert_eq!(
        (
            cascade.columns.clone(),
            cascade.ref_table.as_str(),
            cascade.ref_columns.clone()
        ),
        (
            vec!["customer_id".to_string()],
            "customers",
            vec!["id".to_string()]
        )
    );
    assert_eq!(
        (cascade.on_delete, cascade.on_update),
        (FkAction::Cascade, FkAction::NoAction)
    );
    assert_eq!(
        cascade.definition,
        "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE"
    );
    let names: Vec<&str> = lines.foreign_keys.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["lines_order", "order_lines_product_id_fkey"]);
    let deferred = &lines.foreign_keys[0];
    assert_eq!(
        (deferred.on_delete, deferred.deferrable),
        (FkAction::Cascade, Deferrable::InitiallyDeferred)
    );
    assert_eq!(
        deferred.definition,
        "FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
    );
    let set_null = &lines.foreign_keys[1];
    assert_eq!(
        (set_null.on_delete, set_null.on_update, set_null.deferrable),
        (FkAction::SetNull, FkAction::Cascade, Deferrable::No)
    );
    assert_eq!(
        set_null.ref_columns,
        ["id"],
        "REFERENCES without columns means the parent's key"
    );
    assert_eq!(
        set_null.definition,
        "FOREIGN KEY (product_id) REFERENCES products(id) ON UPDATE CASCADE ON DELETE SET NULL"
    );

    // Secondary indexes: expression, DESC, partial.
    assert_eq!(customers.indexes.len(), 2, "{:#?}", customers.indexes);
    let lower = customers
        .index("customers_lower_email")
        .expect("lower(email)");
    assert!(lower.unique);
    assert_eq!(
        lower.elements[0].key,
        IndexKey::Expression {
            sql: "lower(email)".into()
        }
    );
    let desc = customers
        .index("customers_created")
        .expect("the DESC index");
    assert!(!desc.unique);
    let keys: Vec<(IndexKey, bool, bool)> = desc
        .elements
        .iter()
        .map(|e| (e.key.clone(), e.descending, e.nulls_first))
        .collect();
    assert_eq!(
        keys,
        [
            (
                IndexKey::Column {
                    name: "created_at".into()
                },
                true,
                false
            ),
            (IndexKey::Column { name: "id".into() }, false, true),
        ],
        "SQLite sorts NULLs before every value"
    );
    let partial = orders
        .index("orders_one_pending")
        .expect("the partial index");
    assert!(partial.unique);
    assert_eq!(partial.predicate.as_deref(), Some("status = 'pending'"));
    assert_eq!(
        partial.definition,
        "CREATE UNIQUE INDEX orders_one_pending ON orders (customer_id) WHERE status = 'pending'"
    );
    assert_eq!(desc.predicate, None);

    // The view and the trigger, verbatim.
    let view = schema.view("paid_orders").expect("the view");
    assert!(!view.materialized);
    assert_eq!(
        view.definition,
        "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id\n  WHERE o.status = 'paid'"
    );
    assert_eq!(view.depends_on, ["customers", "orders"]);
    let trigger = schema
        .trigger("orders", "orders_visit")
        .expect("the trigger");
    assert!(trigger.enabled);
    assert_eq!(
        trigger.definition,
        "CREATE TRIGGER orders_visit AFTER INSERT ON orders\nBEGIN UPDATE customers SET visits = visits + 1 WHERE id = NEW.customer_id; END"
    );
    assert_eq!(schema.triggers.len(), 1);

    let back: Schema =
        serde_json::from_value(serde_json::to_value(&schema).expect("json")).expect("deserializes");
    assert_eq!(back, schema);
}

#[test]
fn only_the_tables_asked_for_are_read_with_their_triggers() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("app.db");
    build(&path);
    let schema = read_tables(&path, |t| t == "products" || t == "order_lines");
    let mut names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["order_lines", "products"]);
    assert!(
        schema.triggers.is_empty(),
        "orders' trigger is not asked for"
    );
    assert_eq!(
        table(&schema, "order_lines")
            .foreign_key("lines_order")
            .expect("a key to a table not asked for is still the table's")
            .ref_table,
        "orders"
    );
    assert!(
        schema.view("paid_orders").is_some(),
        "views come whatever the tables"
    );
}
