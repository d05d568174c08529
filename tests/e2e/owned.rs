//! Tables the user already has are the user's: a sync swaps in a fresh
//! copy only of a table its migration created; into any other table it
//! merges by key, and the table keeps its key, constraints, defaults, extra
//! columns and their data. A resumed run refuses a table made again since
//! it started.

use credvault_tests::{Project, exec_sqlite, query_sqlite};

use super::project;
use super::servers::{Scratch, TestDb};

/// The table a user made: a key, NOT NULL, UNIQUE, a check, and a column
/// the migration knows nothing about, with a default.
const CUSTOMERS_PG: &str = "CREATE TABLE {s}.customers (id int PRIMARY KEY, name varchar(100) NOT NULL, \
     email text UNIQUE, tier smallint CHECK (tier BETWEEN 1 AND 3), \
     imported_at timestamptz NOT NULL DEFAULT now())";

/// Five customers; customer 5's tier breaks the table's check.
fn customers_csv(p: &Project, tiers: [u8; 5]) {
    let rows: Vec<String> = (1..=5)
        .map(|i| format!("{i},name {i},c{i}@x.test,{}", tiers[i - 1]))
        .collect();
    p.csv("customers", "id,name,email,tier", &rows);
}

fn csv_into(destination: &str) -> String {
    format!(
        "name = \"import\"\n[source]\ntype = \"csv\"\npath = \"data\"\n{destination}\n[sync]\nmode = \"full\"\n\
         [[tables]]\nsource = \"customers\"\nif_exists = \"append\"\non_error = \"flag\"\nkey = [\"id\"]\n\
         [tables.columns.id]\ntype = \"int\"\n[tables.columns.tier]\ntype = \"int\"\n"
    )
}

#[test]
fn a_full_sync_merges_into_a_postgres_table_the_user_made_and_keeps_its_definition() {
    let s = Scratch::new();
    s.exec(CUSTOMERS_PG);
    s.exec("INSERT INTO {s}.customers VALUES (100, 'kept', 'kept@x.test', 2, '2020-01-01 00:00:00+00')");
    let definition = "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = '{s}.customers'::regclass ORDER BY 1";
    let before = s.rows(definition);
    let p = project();
    customers_csv(&p, [1, 2, 3, 1, 9]);
    p.write("m.toml", &csv_into(&s.endpoint("destination", "")));
    p.run_ok(&["run", "m.toml"]);
    let stamped = s.one("SELECT imported_at::text FROM {s}.customers WHERE id = 1");

    // The source changes: one row updated, one new; 5 still breaks the check.
    customers_csv(&p, [3, 2, 3, 1, 9]);
    p.csv(
        "customers",
        "id,name,email,tier",
        &[
            "1,name 1,c1@x.test,3".into(),
            "2,name 2,c2@x.test,2".into(),
            "3,name 3,c3@x.test,3".into(),
            "4,name 4,c4@x.test,1".into(),
            "5,name 5,c5@x.test,9".into(),
            "6,name 6,c6@x.test,2".into(),
        ],
    );
    let sync = p.run_ok(&["sync", "m.toml"]);
    assert!(
        sync.stdout.contains("1 new, 1 updated, 0 deleted"),
        "{}",
        sync.all()
    );

    assert_eq!(
        s.rows(definition),
        before,
        "the table keeps its constraints"
    );
    let types = s.rows(
        "SELECT column_name::text, data_type::text, (column_default IS NOT NULL)::text FROM information_schema.columns \
         WHERE table_schema = '{s}' AND table_name = 'customers' ORDER BY ordinal_position",
    );
    let types: Vec<String> = types
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        types,
        [
            "id integer false",
            "name character varying false",
            "email text false",
            "tier smallint false",
            "imported_at timestamp with time zone true"
        ]
    );
    let rows = s.rows("SELECT id::text, tier::text FROM {s}.customers ORDER BY customers.id");
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r[0].as_deref().unwrap_or(""),
                r[1].as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        rows,
        ["1:3", "2:2", "3:3", "4:1", "6:2", "100:2"],
        "the check still refuses 5, and the user's row 100 stays"
    );
    assert_eq!(
        s.one("SELECT imported_at::text FROM {s}.customers WHERE id = 1"),
        stamped,
        "an updated row keeps the columns the migration does not map"
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM pg_tables WHERE schemaname = '{s}' AND tablename LIKE 'credvault%'"),
        Some("0".into()),
        "no scratch table is left behind"
    );
    let flagged = p.run_ok(&["flagged", "list", "--migration", "import"]);
    assert!(
        flagged.stdout.contains("customers_tier_check"),
        "the refused row is flagged by the table's policy, at the run and at the sync: {}",
        flagged.all()
    );
}

#[test]
fn a_full_sync_still_swaps_in_a_table_its_migration_created() {
    let s = Scratch::new();
    let p = project();
    customers_csv(&p, [1, 2, 3, 1, 2]);
    p.write("m.toml", &csv_into(&s.endpoint("destination", "")));
    p.run_ok(&["run", "m.toml"]);
    let oid = s.one("SELECT '{s}.customers'::regclass::oid::text");
    p.csv(
        "customers",
        "id,name,email,tier",
        &["1,name 1,c1@x.test,3".into()],
    );
    let sync = p.run_ok(&["sync", "m.toml"]);
    assert!(
        sync.stdout.contains("0 new, 1 updated, 4 deleted"),
        "{}",
        sync.all()
    );
    assert_ne!(
        s.one("SELECT '{s}.customers'::regclass::oid::text"),
        oid,
        "the migration's own table is replaced by a fresh copy"
    );
    // A table the user drops and makes again is theirs from then on.
    s.exec("DROP TABLE {s}.customers");
    s.exec(CUSTOMERS_PG);
    s.exec("INSERT INTO {s}.customers (id, name) VALUES (100, 'kept')");
    p.run_ok(&["sync", "m.toml"]);
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.customers WHERE id = 100"),
        Some("1".into()),
        "the user's table was merged into, not replaced"
    );
}

/// The source renames customer 1, still has 5 (which the table's check
/// refuses) and gains 7; a full sync merges that in.
fn sync_a_rename_a_refusal_and_a_new_row(p: &Project) {
    p.csv(
        "customers",
        "id,name,email,tier",
        &[
            "1,renamed,c1@x.test,3".into(),
            "5,name 5,c5@x.test,9".into(),
            "7,name 7,c7@x.test,1".into(),
        ],
    );
    let sync = p.run_ok(&["sync", "m.toml"]);
    assert!(
        sync.stdout.contains("1 new, 1 updated, 0 deleted"),
        "{}",
        sync.all()
    );
}

/// The user's table after that sync: their own row and column values kept.
fn assert_merged(rows: &[Vec<Option<String>>]) {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "1 renamed by hand",
            "2 name 2 by hand",
            "3 name 3 by hand",
            "4 name 4 by hand",
            "7 name 7 by hand",
            "100 kept long ago"
        ]
    );
}

#[test]
fn a_full_sync_merges_into_a_sqlite_table_the_user_made() {
    let p = project();
    let vault = p.path().join("out/vault.db");
    std::fs::create_dir_all(p.path().join("out")).expect("out/");
    exec_sqlite(
        &vault,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, \
         tier INTEGER CHECK (tier BETWEEN 1 AND 3), imported_at TEXT NOT NULL DEFAULT 'by hand');
         INSERT INTO customers VALUES (100, 'kept', 'kept@x.test', 2, 'long ago')",
    );
    customers_csv(&p, [1, 2, 3, 1, 9]);
    p.write(
        "m.toml",
        &csv_into("[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\""),
    );
    p.run_ok(&["run", "m.toml"]);
    sync_a_rename_a_refusal_and_a_new_row(&p);
    let schema = query_sqlite(
        &vault,
        "SELECT sql FROM sqlite_schema WHERE name = 'customers'",
    );
    assert!(
        schema[0][0]
            .as_deref()
            .unwrap_or("")
            .contains("CHECK (tier BETWEEN 1 AND 3)"),
        "{schema:?}"
    );
    let rows = query_sqlite(
        &vault,
        "SELECT id, name, imported_at FROM customers ORDER BY id",
    );
    assert_merged(&rows);
}

#[test]
fn a_full_sync_merges_into_a_mariadb_table_the_user_made() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200) UNIQUE, \
         tier SMALLINT CHECK (tier BETWEEN 1 AND 3), imported_at VARCHAR(20) NOT NULL DEFAULT 'by hand')",
    );
    db.exec("INSERT INTO customers VALUES (100, 'kept', 'kept@x.test', 2, 'long ago')");
    let p = project();
    customers_csv(&p, [1, 2, 3, 1, 9]);
    p.write(
        "m.toml",
        &csv_into(&format!("[destination]\n{}", db.endpoint())),
    );
    p.run_ok(&["run", "m.toml"]);
    sync_a_rename_a_refusal_and_a_new_row(&p);
    let create = db.query("SHOW CREATE TABLE customers");
    let create = create[0][1].clone().unwrap_or_default();
    assert!(
        create.contains("PRIMARY KEY (`id`)") && create.contains("CHECK"),
        "{create}"
    );
    let rows = db.query("SELECT id, name, imported_at FROM customers ORDER BY id");
    assert_merged(&rows);
}

#[test]
fn a_resumed_run_refuses_a_table_another_migration_made_again() {
    let p = project();
    let people: Vec<String> = (1..=40).map(|i| format!("{i},p{i}")).collect();
    p.csv("people", "id,name", &people);
    let migration = |name: &str| {
        format!(
            "name = \"{name}\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n\
             [settings]\nbatch_size = 10\nvalidate = false\n[[tables]]\nsource = \"people\"\nif_exists = \"replace\"\non_error = \"stop\"\n\
             [tables.columns.id]\ntype = \"int\"\n"
        )
    };
    p.write("a.toml", &migration("a"));
    p.write("b.toml", &migration("b"));
    // Migration a stops on row 25 (not a number) and can be resumed.
    let mut broken = people.clone();
    broken[24] = "x25,p25".into();
    p.csv("people", "id,name", &broken);
    let a = p.run(&["run", "a.toml"]);
    assert_eq!(a.code, 1, "{}", a.all());
    let vault = p.path().join("out/vault.db");
    assert_eq!(
        query_sqlite(&vault, "SELECT count(*) FROM people")[0][0],
        Some("20".into())
    );
    // Migration b makes the table again meanwhile, and the row is fixed.
    p.csv("people", "id,name", &people);
    p.run_ok(&["run", "b.toml"]);
    let resumed = p.run(&["run", "a.toml"]);
    assert_eq!(resumed.code, 1, "{}", resumed.all());
    assert!(
        resumed.all().contains("made again by migration `b`")
            && resumed.all().contains("--restart"),
        "{}",
        resumed.all()
    );
    assert_eq!(
        query_sqlite(&vault, "SELECT count(*) FROM people")[0][0],
        Some("40".into()),
        "nothing was appended to b's table"
    );
    p.run_ok(&["run", "a.toml", "--restart"]);
    assert_eq!(
        query_sqlite(&vault, "SELECT count(*) FROM people")[0][0],
        Some("40".into())
    );
}

/// Orders listed before the customers they refer to, into tables the user
/// made with a foreign key between them.
fn orders_then_customers(s: &Scratch, p: &Project) {
    s.exec(
        "CREATE TABLE {s}.customers (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE {s}.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES {s}.customers (id))",
    );
    p.csv(
        "customers",
        "id,name",
        &(1..=50).map(|i| format!("{i},c{i}")).collect::<Vec<_>>(),
    );
    p.csv(
        "orders",
        "id,customer_id",
        &(1..=200)
            .map(|i| format!("{i},{}", i % 50 + 1))
            .collect::<Vec<_>>(),
    );
    let table = |name: &str| {
        format!(
            "[[tables]]\nsource = \"{name}\"\nif_exists = \"append\"\non_error = \"flag\"\n[tables.columns.id]\ntype = \"int\"\n"
        )
    };
    p.write(
        "m.toml",
        &format!(
            "name = \"shop\"\n[source]\ntype = \"csv\"\npath = \"data\"\n{}[settings]\nparallel_tables = 1\n{}[tables.columns.customer_id]\ntype = \"int\"\n{}",
            s.endpoint("destination", ""),
            table("orders"),
            table("customers")
        ),
    );
}

#[test]
fn appends_load_parents_before_children_by_the_destinations_foreign_keys() {
    let s = Scratch::new();
    let p = project();
    orders_then_customers(&s, &p);
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check
            .stdout
            .contains("parents before children, by their foreign keys: customers, then orders"),
        "{}",
        check.all()
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("0 flagged"), "{}", run.all());
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.orders"),
        Some("200".into())
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.customers"),
        Some("50".into())
    );
}

/// Customers whose last order is one of the run's orders: with orders'
/// own key to customers, the two tables form a cycle. Customers 1–10 start
/// a chain (customer i → order 100 + i → customer i + 1 … → customer 11,
/// which has no last order), so a customer lands only after its last
/// order, which lands only after the next customer; customer 20 and
/// order 19 refer to each other, a ring no order of single rows can land.
fn customers_and_orders_in_a_cycle(s: &Scratch, p: &Project) {
    orders_then_customers(s, p);
    s.exec("ALTER TABLE {s}.customers ADD COLUMN last_order int REFERENCES {s}.orders (id)");
    let last_order = |i: u32| match i {
        1..=10 => (100 + i).to_string(),
        20 => "19".into(),
        _ => String::new(),
    };
    p.csv(
        "customers",
        "id,name,last_order",
        &(1..=50)
            .map(|i| format!("{i},c{i},{}", last_order(i)))
            .collect::<Vec<_>>(),
    );
    let m = std::fs::read_to_string(p.path().join("m.toml"))
        .expect("m.toml")
        .replace("[tables.columns.id]", "key = [\"id\"]\n[tables.columns.id]");
    p.write(
        "m.toml",
        &format!("{m}[tables.columns.last_order]\ntype = \"int\"\n"),
    );
}

#[test]
fn a_cycle_of_foreign_keys_loads_and_its_refused_rows_land_once_it_is_in() {
    let s = Scratch::new();
    let p = project();
    customers_and_orders_in_a_cycle(&s, &p);
    let check = p.run(&["check", "m.toml"]);
    assert!(
        check
            .stdout
            .contains("form a cycle: they load together last"),
        "{}",
        check.all()
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "the ring stays refused: {}", run.all());
    assert!(
        run.all()
            .contains("customers: 10 row(s) refused for a missing parent written"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("1 still refused"), "{}", run.all());
    // Everything but the ring (customer 20, order 19) and the orders of
    // customer 20 landed, each after the row it refers to.
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.customers"),
        Some("49".into())
    );
    assert_eq!(
        s.one("SELECT string_agg(id::text, ',' ORDER BY id) FROM generate_series(1, 200) id WHERE id NOT IN (SELECT id FROM {s}.orders)"),
        Some("19,69,119,169".into())
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.customers WHERE last_order IS NOT NULL"),
        Some("10".into())
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM pg_indexes WHERE schemaname = '{s}' AND indexname LIKE 'credvault%'"),
        Some("0".into()),
        "the user's tables get no index of ours"
    );
    let rows = p.flagged_list(&["--migration", "shop"]);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        run.stdout.contains("[FAIL] references"),
        "validation names the rows left without their parent: {}",
        run.all()
    );
    assert!(
        run.stdout.contains("5 flagged"),
        "the run's totals count the rows written later as written: {}",
        run.all()
    );
}

#[test]
fn check_fails_a_cycle_of_foreign_keys_under_the_stop_policy() {
    let s = Scratch::new();
    let p = project();
    customers_and_orders_in_a_cycle(&s, &p);
    let m = std::fs::read_to_string(p.path().join("m.toml")).expect("m.toml");
    p.write(
        "m.toml",
        &m.replace("on_error = \"flag\"", "on_error = \"stop\""),
    );
    let check = p.run(&["check", "m.toml"]);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check
            .stdout
            .contains("[FAIL] destination load order: the foreign keys of")
            && check.stdout.contains("form a cycle")
            && check
                .stdout
                .contains("choose on_error = \"skip\" or \"flag\""),
        "{}",
        check.all()
    );
}

#[test]
fn rows_of_a_table_that_refers_to_itself_land_after_the_rows_they_refer_to() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.staff (id int PRIMARY KEY, name text NOT NULL, manager int REFERENCES {s}.staff (id))",
    );
    let p = project();
    // Each person's manager comes later in the file: 1 → 2 → … → 30.
    p.csv(
        "staff",
        "id,name,manager",
        &(1..=30)
            .map(|i| {
                format!(
                    "{i},s{i},{}",
                    if i < 30 {
                        (i + 1).to_string()
                    } else {
                        String::new()
                    }
                )
            })
            .collect::<Vec<_>>(),
    );
    p.write(
        "m.toml",
        &format!(
            "name = \"staff\"\n[source]\ntype = \"csv\"\npath = \"data\"\n{}[settings]\nbatch_size = 4\n[[tables]]\nsource = \"staff\"\nif_exists = \"append\"\non_error = \"skip\"\nkey = [\"id\"]\n[tables.columns.id]\ntype = \"int\"\n[tables.columns.manager]\ntype = \"int\"\n",
            s.endpoint("destination", "")
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("0 skipped"), "{}", run.all());
    assert!(
        run.all()
            .contains("row(s) refused for a missing parent written once the rows they refer to were in; 0 still refused"),
        "{}",
        run.all()
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.staff s JOIN {s}.staff m ON m.id = s.manager"),
        Some("29".into())
    );
}

#[test]
fn an_append_into_an_empty_table_is_validated_whole() {
    let s = Scratch::new();
    s.exec(CUSTOMERS_PG);
    let p = project();
    customers_csv(&p, [1, 2, 3, 1, 2]);
    p.write("m.toml", &csv_into(&s.endpoint("destination", "")));
    let run = p.run_ok(&["run", "m.toml"]);
    for line in ["[pass] row count", "[pass] checksum", "[pass] null counts"] {
        assert!(run.stdout.contains(line), "{line}: {}", run.all());
    }
    // A row lost at the destination fails the count, not just the sample.
    s.exec("DELETE FROM {s}.customers WHERE id = 4");
    let validate = p.run(&["validate", "m.toml", "--sample", "1"]);
    assert_eq!(validate.code, 1, "{}", validate.all());
    assert!(
        validate.stdout.contains("[FAIL] row count"),
        "{}",
        validate.all()
    );
}

/// [`orders_then_customers`], where the table refuses customer 7, so
/// orders 6, 56, 106 and 156, which refer to it, are refused by the
/// foreign key; both tables keyed by `id`. Returns the migration file.
fn customer_7_refused(s: &Scratch, p: &Project) -> String {
    orders_then_customers(s, p);
    s.exec("ALTER TABLE {s}.customers ADD CHECK (id <> 7)");
    std::fs::read_to_string(p.path().join("m.toml"))
        .expect("m.toml")
        .replace("[tables.columns.id]", "key = [\"id\"]\n[tables.columns.id]")
}

#[test]
fn children_refused_for_a_refused_parent_fail_validation_with_their_keys() {
    let s = Scratch::new();
    let p = project();
    let m = customer_7_refused(&s, &p);
    p.write("m.toml", &m);
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("[FAIL] references: 4 row(s) refused because a row they refer to is missing"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("id=6"), "{}", run.all());
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.orders"),
        Some("196".into())
    );
}

#[test]
fn on_orphan_flag_flags_children_with_their_parents_error_and_validation_expects_them() {
    let s = Scratch::new();
    let p = project();
    let m = customer_7_refused(&s, &p);
    p.write(
        "m.toml",
        &m.replacen(
            "on_error = \"flag\"\n",
            "on_error = \"skip\"\non_orphan = \"flag\"\n",
            1,
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout
            .contains("[pass] references: 4 row(s) whose parent is missing are flagged"),
        "{}",
        run.all()
    );
    let flagged = p.run_ok(&[
        "flagged",
        "list",
        "--migration",
        "shop",
        "--table",
        "orders",
    ]);
    assert!(
        flagged
            .stdout
            .contains("its parent in `customers` (7) was refused")
            && flagged.stdout.contains("customers_id_check"),
        "{}",
        flagged.all()
    );
    // With `stop`, on_orphan = "flag" is refused before anything runs.
    p.write(
        "m.toml",
        &m.replacen(
            "on_error = \"flag\"\n",
            "on_error = \"stop\"\non_orphan = \"flag\"\n",
            1,
        ),
    );
    let refused = p.run(&["check", "m.toml"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(refused.all().contains("on_orphan"), "{}", refused.all());
}
