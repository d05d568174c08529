//! The MariaDB/MySQL source's schema model (issue 18, introspection),
//! through the library API (`Source::schema` on the source a migration
//! opens), against an application-style schema in a throwaway database of
//! the real server.

use std::path::Path;

use credvault::config::Migration;
use credvault::drivers::open_source;
use credvault::model::schema::{
    DefaultKind, FkAction, Generation, IndexKey, PartitionStrategy, RoutineKind, Schema, TableDef,
    TypeDef, TypeKind,
};

use super::servers::{TestDb, block_on};

/// An application's schema: AUTO_INCREMENT keys (one started at 100), a
/// composite key, foreign keys that cascade, restrict and set NULL, a
/// unique key, prefix, DESC, FULLTEXT and SPATIAL indexes, a table and a
/// column check, an ENUM, JSON, exact numeric, character and temporal
/// types, literal, NULL and function defaults, ON UPDATE, a generated
/// column, comments, a RANGE-partitioned table, a view, a function, a
/// procedure and a trigger; with rows, so the counters have moved.
const APP: &str = r#"
CREATE TABLE customers (
  id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT,
  email VARCHAR(120) NOT NULL COMMENT 'Login, unique',
  name VARCHAR(40) NOT NULL DEFAULT 'x',
  country CHAR(2) NOT NULL DEFAULT 'FR',
  vip TINYINT(1) NOT NULL DEFAULT 0,
  balance DECIMAL(12,2) DEFAULT NULL,
  note VARCHAR(10) DEFAULT 'NULL',
  status ENUM('new','active','it''s closed') NOT NULL DEFAULT 'new',
  profile JSON,
  created_at DATETIME(6) NOT NULL DEFAULT current_timestamp(6),
  updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  email_domain VARCHAR(120) AS (substring_index(email, '@', -1)) STORED,
  bio TEXT,
  PRIMARY KEY (id),
  UNIQUE KEY customers_email_key (email),
  KEY customers_name_prefix (name(10), country) COMMENT 'Search by name',
  KEY customers_created_desc (created_at DESC, id),
  FULLTEXT KEY customers_bio_ft (bio),
  CONSTRAINT customers_country_check CHECK (country REGEXP '^[A-Z]{2}$')
) ENGINE=InnoDB COMMENT='People who buy';
CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT(10) UNSIGNED NOT NULL,
  total DECIMAL(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
  CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
    ON DELETE CASCADE ON UPDATE RESTRICT
) AUTO_INCREMENT = 100;
CREATE TABLE order_lines (
  order_id BIGINT NOT NULL,
  line SMALLINT NOT NULL,
  customer_id INT(10) UNSIGNED NULL,
  PRIMARY KEY (order_id, line),
  CONSTRAINT lines_order_fk FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
  CONSTRAINT lines_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
    ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE TABLE places (id INT PRIMARY KEY, spot POINT NOT NULL, SPATIAL INDEX places_spot (spot));
CREATE TABLE events (
  id INT NOT NULL, happened DATE NOT NULL, kind VARCHAR(20),
  PRIMARY KEY (id, happened)
) PARTITION BY RANGE (YEAR(happened)) (
  PARTITION p2025 VALUES LESS THAN (2026),
  PARTITION p2026 VALUES LESS THAN (2027),
  PARTITION pmax VALUES LESS THAN MAXVALUE);
CREATE TABLE regional (
  id INT NOT NULL, region CHAR(2) NOT NULL, PRIMARY KEY (id, region)
) PARTITION BY LIST COLUMNS (region) SUBPARTITION BY HASH (id) SUBPARTITIONS 2 (
  PARTITION p_eu VALUES IN ('FR', 'DE'),
  PARTITION p_us VALUES IN ('US'));
CREATE VIEW active_customers AS SELECT id, email FROM customers WHERE status = 'active';
CREATE FUNCTION order_total(o BIGINT) RETURNS DECIMAL(12,2) READS SQL DATA
  RETURN (SELECT total FROM orders WHERE id = o);
CREATE PROCEDURE purge_orders(IN before_id BIGINT) MODIFIES SQL DATA
  DELETE FROM orders WHERE id < before_id;
CREATE TRIGGER customers_upper BEFORE INSERT ON customers FOR EACH ROW
  SET NEW.country = UPPER(NEW.country);
INSERT INTO customers (email, name, country) VALUES
  ('ann@example.com', 'Ann', 'fr'), ('bob@example.com', 'Bob', 'DE');
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20), (1, 5);
INSERT INTO order_lines VALUES (100, 1, 1), (100, 2, 2), (101, 1, NULL);
INSERT INTO events VALUES (1, '2025-03-01', 'signup'), (2, '2030-01-01', 'far');
"#;

/// The model the migration's MariaDB source reads of every table it
/// discovers in the test database.
fn read_schema(db: &TestDb) -> Schema {
    read_tables(db, None)
}

/// The model of the tables called `only` (every table discovered if none).
fn read_tables(db: &TestDb, only: Option<&[&str]>) -> Schema {
    let text = format!(
        "name = \"schema-read\"\n[source]\n{}[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"customers\"\n",
        db.endpoint()
    );
    let m = Migration::parse(&text, Path::new("schema.toml"), ".".into()).expect("a migration");
    block_on(async {
        let source = open_source(&m).await.expect("the source opens");
        let mut tables = source.discover().await.expect("discover");
        if let Some(only) = only {
            tables.retain(|t| only.contains(&t.name.as_str()));
        }
        source
            .schema(&tables)
            .await
            .expect("the schema reads")
            .expect("MariaDB says its schema")
    })
}

fn table<'a>(schema: &'a Schema, name: &str) -> &'a TableDef {
    schema
        .table(name)
        .unwrap_or_else(|| panic!("table `{name}` in {:#?}", schema.tables))
}

#[test]
fn the_mariadb_source_reads_every_part_of_an_applications_schema() {
    let db = TestDb::new();
    db.exec(APP);
    let schema = read_schema(&db);
    assert_eq!(schema.dialect, "mariadb");
    assert_eq!(schema.namespace.as_deref(), Some(db.name.as_str()));
    let mut names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "customers",
            "events",
            "order_lines",
            "orders",
            "places",
            "regional"
        ],
        "the view is not a table"
    );

    // Exact types, verbatim, and what they are.
    let customers = table(&schema, "customers");
    let column = |t: &TableDef, c: &str| {
        t.column(c)
            .unwrap_or_else(|| panic!("column `{}.{c}` in {:#?}", t.name, t.columns))
            .clone()
    };
    for (t, c, sql) in [
        ("customers", "id", "int(10) unsigned"),
        ("customers", "name", "varchar(40)"),
        ("customers", "country", "char(2)"),
        ("customers", "vip", "tinyint(1)"),
        ("customers", "balance", "decimal(12,2)"),
        ("customers", "status", "enum('new','active','it''s closed')"),
        ("customers", "profile", "longtext"),
        ("customers", "created_at", "datetime(6)"),
        ("customers", "updated_at", "timestamp"),
        ("orders", "id", "bigint(20)"),
        ("order_lines", "line", "smallint(6)"),
        ("places", "spot", "point"),
    ] {
        assert_eq!(column(table(&schema, t), c).native.sql, sql, "{t}.{c}");
    }
    let kind = |c: &str| column(customers, c).native.kind;
    assert_eq!(
        kind("id"),
        TypeKind::Int {
            bytes: 4,
            unsigned: true
        }
    );
    assert_eq!(kind("vip"), TypeKind::Bool);
    assert_eq!(
        kind("balance"),
        TypeKind::Decimal {
            precision: Some(12),
            scale: Some(2)
        }
    );
    assert_eq!(
        kind("name"),
        TypeKind::Char {
            length: Some(40),
            varying: true
        }
    );
    assert_eq!(
        kind("country"),
        TypeKind::Char {
            length: Some(2),
            varying: false
        }
    );
    assert_eq!(
        kind("created_at"),
        TypeKind::Timestamp {
            tz: false,
            precision: Some(6)
        }
    );
    assert_eq!(
        kind("profile"),
        TypeKind::Json { binary: false },
        "MariaDB's JSON is a longtext with a json_valid check"
    );
    assert_eq!(
        kind("status"),
        TypeKind::Enum {
            name: "customers_status".into()
        }
    );
    match schema.type_def("customers_status") {
        Some(TypeDef::Enum(e)) => assert_eq!(e.labels, ["new", "active", "it's closed"]),
        other => panic!("the enum's labels, found {other:?}"),
    }

    // Nullability, defaults, ON UPDATE, generated columns, comments.
    assert!(column(customers, "email").not_null);
    assert!(!column(customers, "balance").not_null);
    let default = |t: &TableDef, c: &str| {
        column(t, c)
            .default
            .unwrap_or_else(|| panic!("a default for {c}"))
    };
    let literal = |v: &str| DefaultKind::Literal {
        value: Some(v.into()),
    };
    assert_eq!(default(customers, "name").sql, "'x'");
    assert_eq!(default(customers, "name").kind, literal("x"));
    assert_eq!(default(customers, "vip").sql, "0");
    assert_eq!(default(customers, "vip").kind, literal("0"));
    assert_eq!(default(customers, "status").kind, literal("new"));
    assert_eq!(default(customers, "note").kind, literal("NULL"));
    assert_eq!(default(customers, "balance").sql, "NULL");
    assert_eq!(
        default(customers, "balance").kind,
        DefaultKind::Literal { value: None }
    );
    assert_eq!(
        default(table(&schema, "orders"), "total").kind,
        literal("0.00")
    );
    assert_eq!(default(customers, "created_at").sql, "current_timestamp(6)");
    assert_eq!(default(customers, "created_at").kind, DefaultKind::Now);
    assert_eq!(default(customers, "updated_at").sql, "current_timestamp()");
    assert_eq!(default(customers, "updated_at").kind, DefaultKind::Now);
    assert_eq!(column(customers, "email").default, None, "no default");
    let on_update = column(customers, "updated_at")
        .on_update
        .expect("ON UPDATE");
    assert_eq!(
        (on_update.sql.as_str(), on_update.kind),
        ("current_timestamp()", DefaultKind::Now)
    );
    assert_eq!(column(customers, "created_at").on_update, None);
    let generated = column(customers, "email_domain");
    assert_eq!(
        generated.generated.as_deref(),
        Some("substring_index(`email`,'@',-1)")
    );
    assert_eq!(generated.default, None, "a generated column has no default");
    assert_eq!(customers.comment.as_deref(), Some("People who buy"));
    assert_eq!(
        column(customers, "email").comment.as_deref(),
        Some("Login, unique")
    );
    assert_eq!(column(customers, "name").comment, None);
    assert_eq!(column(customers, "name").collation, None, "the table's");
    assert_eq!(
        column(customers, "profile").collation.as_deref(),
        Some("utf8mb4_bin")
    );

    // AUTO_INCREMENT with the next value past the rows.
    let identity = |t: &TableDef, c: &str| column(t, c).identity.expect("AUTO_INCREMENT");
    let id = identity(customers, "id");
    assert_eq!(
        (id.generation, id.next, id.sequence),
        (Generation::AutoIncrement, Some(3), None)
    );
    assert_eq!(column(customers, "id").default, None);
    let orders = table(&schema, "orders");
    assert_eq!(identity(orders, "id").next, Some(103));
    assert_eq!(column(orders, "customer_id").identity, None);

    // Keys and constraints.
    let key = customers.primary_key.as_ref().expect("a primary key");
    assert_eq!(
        (key.name.as_str(), key.columns.clone()),
        ("PRIMARY", vec!["id".to_string()])
    );
    let lines = table(&schema, "order_lines");
    let key = lines.primary_key.as_ref().expect("a composite key");
    assert_eq!(key.columns, ["order_id", "line"]);
    assert_eq!(key.definition, "PRIMARY KEY (`order_id`, `line`)");
    assert_eq!(customers.uniques.len(), 1);
    assert_eq!(customers.uniques[0].name, "customers_email_key");
    assert_eq!(customers.uniques[0].columns, ["email"]);
    assert!(customers.index("customers_email_key").is_none());
    let check = customers
        .check("customers_country_check")
        .expect("the table check");
    assert_eq!(check.expression, "`country` regexp '^[A-Z]{2}$'");
    assert_eq!(check.columns, ["country"]);
    let total = orders.check("total").expect("the column check");
    assert_eq!(total.expression, "`total` >= 0");
    assert_eq!(total.definition, "CHECK (`total` >= 0)");
    assert_eq!(
        customers.check("profile").expect("JSON's check").expression,
        "json_valid(`profile`)",
        "MariaDB's JSON check is kept, so the same dialect gets JSON back"
    );

    let fk = orders
        .foreign_key("orders_customer_fk")
        .expect("orders → customers");
    assert_eq!(
        (
            fk.ref_table.as_str(),
            fk.ref_columns.clone(),
            fk.columns.clone()
        ),
        (
            "customers",
            vec!["id".to_string()],
            vec!["customer_id".to_string()]
        )
    );
    assert_eq!(fk.ref_schema, None);
    assert_eq!(
        (fk.on_delete, fk.on_update),
        (FkAction::Cascade, FkAction::Restrict)
    );
    assert_eq!(
        fk.definition,
        "FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE ON UPDATE RESTRICT"
    );
    let set_null = lines
        .foreign_key("lines_customer_fk")
        .expect("order_lines → customers");
    assert_eq!(
        (set_null.on_delete, set_null.on_update),
        (FkAction::SetNull, FkAction::Cascade)
    );
    let unsaid = lines
        .foreign_key("lines_order_fk")
        .expect("order_lines → orders");
    assert_eq!(
        (unsaid.on_delete, unsaid.on_update),
        (FkAction::Cascade, FkAction::Restrict),
        "MariaDB says RESTRICT for an action not given"
    );

    // Secondary indexes: prefix, multi-column, DESC, FULLTEXT, SPATIAL, and
    // the index InnoDB made for a foreign key.
    let prefix = customers
        .index("customers_name_prefix")
        .expect("the prefix index");
    assert_eq!(prefix.elements.len(), 2);
    assert_eq!(
        prefix.elements[0].key,
        IndexKey::Column {
            name: "name".into()
        }
    );
    assert_eq!(prefix.elements[0].prefix, Some(10));
    assert_eq!(prefix.elements[1].prefix, None);
    assert_eq!(prefix.comment.as_deref(), Some("Search by name"));
    assert!(!prefix.unique);
    assert_eq!(prefix.method, "btree");
    assert_eq!(
        prefix.definition,
        "CREATE INDEX `customers_name_prefix` ON `customers` (`name`(10), `country`)"
    );
    let desc = customers
        .index("customers_created_desc")
        .expect("the DESC index");
    assert!(desc.elements[0].descending);
    assert!(!desc.elements[1].descending);
    assert_eq!(
        customers
            .index("customers_bio_ft")
            .expect("FULLTEXT")
            .method,
        "fulltext"
    );
    let spatial = table(&schema, "places")
        .index("places_spot")
        .expect("SPATIAL");
    assert_eq!(spatial.method, "spatial");
    assert_eq!(spatial.elements[0].prefix, None);
    assert!(orders.index("orders_customer_fk").is_some());

    // The partitions, in order, with their bounds.
    let events = table(&schema, "events");
    let partitioning = events.partitioning.as_ref().expect("partitioned");
    assert_eq!(partitioning.strategy, PartitionStrategy::Range);
    assert_eq!(partitioning.key, "RANGE (year(`happened`))");
    let partitions: Vec<(&str, &str, &str)> = partitioning
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.parent.as_str(), p.bound.as_str()))
        .collect();
    assert_eq!(
        partitions,
        [
            ("p2025", "events", "VALUES LESS THAN (2026)"),
            ("p2026", "events", "VALUES LESS THAN (2027)"),
            ("pmax", "events", "VALUES LESS THAN MAXVALUE"),
        ]
    );
    assert_eq!(orders.partitioning, None);
    let regional = table(&schema, "regional")
        .partitioning
        .as_ref()
        .expect("partitioned by list");
    assert_eq!(
        (regional.strategy, regional.key.as_str()),
        (PartitionStrategy::List, "LIST COLUMNS (`region`)")
    );
    let partitions: Vec<(&str, &str, &str, Option<&str>)> = regional
        .partitions
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.parent.as_str(),
                p.bound.as_str(),
                p.key.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        partitions,
        [
            (
                "p_eu",
                "regional",
                "VALUES IN ('FR','DE')",
                Some("HASH (`id`)")
            ),
            ("p_eusp0", "p_eu", "", None),
            ("p_eusp1", "p_eu", "", None),
            ("p_us", "regional", "VALUES IN ('US')", Some("HASH (`id`)")),
            ("p_ussp0", "p_us", "", None),
            ("p_ussp1", "p_us", "", None),
        ],
        "subpartitions come after their partition"
    );

    // The view, unqualified, with what it reads; routines; the trigger.
    let view = schema.view("active_customers").expect("the view");
    assert!(!view.materialized);
    assert_eq!(view.depends_on, ["customers"]);
    assert!(
        !view.definition.contains(&db.name),
        "the database is not named: {}",
        view.definition
    );
    assert!(
        view.definition.contains("from `customers`"),
        "{}",
        view.definition
    );
    let function = schema.routine("order_total").expect("the function");
    assert_eq!(function.kind, RoutineKind::Function);
    assert_eq!(function.arguments, "`o` bigint(20)");
    assert!(
        function
            .definition
            .starts_with("CREATE FUNCTION `order_total`(`o` bigint(20)) RETURNS decimal(12,2)"),
        "{}",
        function.definition
    );
    assert!(
        function
            .definition
            .ends_with("RETURN (SELECT total FROM orders WHERE id = o)")
    );
    let procedure = schema.routine("purge_orders").expect("the procedure");
    assert_eq!(procedure.kind, RoutineKind::Procedure);
    assert_eq!(procedure.arguments, "IN `before_id` bigint(20)");
    let trigger = schema
        .trigger("customers", "customers_upper")
        .expect("the trigger");
    assert_eq!(
        trigger.definition,
        "CREATE TRIGGER `customers_upper` BEFORE INSERT ON `customers` FOR EACH ROW SET NEW.country = UPPER(NEW.country)"
    );
    assert!(trigger.enabled);
    assert!(schema.sequences.is_empty());
}

#[test]
fn only_the_tables_asked_for_are_read_with_what_belongs_to_them() {
    let db = TestDb::new();
    db.exec(APP);
    let schema = read_tables(&db, Some(&["orders"]));
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
    assert!(
        schema.types.is_empty(),
        "no enum of a table not asked for: {:?}",
        schema.types
    );
    assert!(
        schema.triggers.is_empty(),
        "no trigger of a table not asked for: {:?}",
        schema.triggers
    );
    let orders = table(&schema, "orders");
    assert_eq!(
        orders
            .foreign_key("orders_customer_fk")
            .expect("its foreign key, to a table not asked for")
            .ref_table,
        "customers"
    );
    assert_eq!(
        orders.check("total").expect("its own check").columns,
        ["total"]
    );
    assert!(orders.check("customers_country_check").is_none());
    assert!(
        schema.view("active_customers").is_some(),
        "views are the database's"
    );
    assert!(schema.routine("order_total").is_some(), "so are routines");
}
