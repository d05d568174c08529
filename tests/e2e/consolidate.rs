//! Multi-source consolidation: a PostgreSQL, a MariaDB and a CSV source
//! into one table, with deliberate duplicates resolved by each rule, a
//! sync that sees changes in every source, a validation that catches a
//! tampered table, and the mistakes a user makes (a NULL key, sources that
//! disagree on a type, rows that tie) refused with the old table intact.

use super::project;
use super::servers::{Scratch, TestDb};

/// The CRM (PostgreSQL): `id`, `email`, `name`, `updated_at`, `tags` (an
/// array, which lands as JSON in the consolidated table).
const CRM: &str = r#"
CREATE TABLE {s}.customers (id int PRIMARY KEY, email text NOT NULL, name text, updated_at timestamptz, tags text[]);
INSERT INTO {s}.customers VALUES
 (1, 'ada@example.com',   'Ada (crm)',   '2024-03-01 10:00:00+00', '{vip,math}'),
 (2, 'alan@example.com',  'Alan (crm)',  '2024-01-01 10:00:00+00', NULL),
 (3, 'grace@example.com', 'Grace (crm)', NULL, '{}'),
 (4, 'ken@example.com',   'Ken (crm)',   '2024-05-05 05:05:05.123456+00', '{unix}');
"#;

/// The shop (MariaDB): other column names, a `phone` nobody else has.
const SHOP: &str = r#"
CREATE TABLE clients (client_id INT PRIMARY KEY, mail VARCHAR(100) NOT NULL, full_name VARCHAR(100), phone VARCHAR(20), modified DATETIME(6));
INSERT INTO clients VALUES
 (10, 'ada@example.com',   'Ada (shop)',   '+44 1',  '2024-02-01 10:00:00'),
 (11, 'alan@example.com',  'Alan (shop)',  '+44 2',  '2024-06-01 10:00:00'),
 (12, 'grace@example.com', 'Grace (shop)', '+1 3',   '2020-01-01 00:00:00'),
 (13, 'barbara@example.com','Barbara (shop)', NULL,  '2024-01-01 00:00:00'),
 (14, 'ken@example.com',   'Ken (shop)',   '+1 4',   '2024-05-05 05:05:05.123456');
"#;

/// The legacy export (CSV).
const LEGACY: &str = "email,name,updated_at
alan@example.com,Alan (legacy),2023-01-01T00:00:00Z
edsger@example.com,Edsger (legacy),2019-09-09T09:09:09Z
barbara@example.com,Barbara (legacy),2025-01-01T00:00:00Z
";

/// The three sources and the destination (a schema of its own).
struct World {
    crm: Scratch,
    shop: TestDb,
    vault: Scratch,
    p: credvault_tests::Project,
}

fn migration(w: &World, rule: &str, extra: &str) -> String {
    let (crm, shop) = (&w.crm, &w.shop);
    format!(
        r#"name = "customers-360"
{destination}
[connections.crm]
type = "postgres"
host = "127.0.0.1"
database = "test"
user = "postgres"
schema = "{crm_schema}"

[connections.shop]
{shop}
[connections.legacy]
type = "csv"
path = "legacy"

[[tables]]
connection = "crm"
source = "customers"
[tables.columns.id]
skip = true

[[tables]]
connection = "shop"
source = "clients"
destination = "customers"
[tables.columns.client_id]
skip = true
[tables.columns.mail]
rename = "email"
[tables.columns.full_name]
rename = "name"
[tables.columns.modified]
rename = "updated_at"
type = "timestamptz"

[[tables]]
connection = "legacy"
source = "people"
destination = "customers"
[tables.columns.updated_at]
type = "timestamptz"

[consolidate.customers]
key = ["email"]
{rule}
lineage = "origin"
if_exists = "replace"
{extra}
"#,
        destination = w.vault.endpoint("destination", ""),
        crm_schema = crm.schema,
        shop = shop.endpoint(),
    )
}

fn setup() -> World {
    let crm = Scratch::new();
    crm.exec(CRM);
    let shop = TestDb::new();
    shop.exec(SHOP);
    let p = project();
    p.write("legacy/people.csv", LEGACY);
    World {
        crm,
        shop,
        vault: Scratch::new(),
        p,
    }
}

impl World {
    /// The consolidated table, by email: name, phone, origin.
    fn customers(&self) -> Vec<Vec<Option<String>>> {
        self.vault
            .rows("SELECT email, name, phone, origin FROM {s}.customers ORDER BY email")
    }
}

fn row(email: &str, name: &str, phone: Option<&str>, origin: &str) -> Vec<Option<String>> {
    vec![
        Some(email.into()),
        Some(name.into()),
        phone.map(Into::into),
        Some(origin.into()),
    ]
}

#[test]
fn three_sources_become_one_table_with_the_latest_row_of_each_key() {
    let w = setup();
    let (crm, shop, p, vault) = (&w.crm, &w.shop, &w.p, &w.vault);
    let rule =
        "rule = \"latest\"\nlatest_by = \"updated_at\"\npriority = [\"crm\", \"shop\", \"legacy\"]";
    p.write("m.toml", &migration(&w, rule, ""));
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check
            .stdout
            .contains("consolidated table customers: 3 source table(s)"),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains("phone text ← shop"),
        "{}",
        check.all()
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("consolidated `customers`"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("12 source rows → 6 rows"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains("[pass] duplicates: 5 keys in more than one source"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("[pass] rows match"), "{}", run.all());
    assert_eq!(
        w.customers(),
        vec![
            // crm 2024-03 beats shop 2024-02.
            row("ada@example.com", "Ada (crm)", None, "crm"),
            // shop 2024-06 beats crm 2024-01 and legacy 2023.
            row("alan@example.com", "Alan (shop)", Some("+44 2"), "shop"),
            // legacy 2025 beats shop 2024.
            row("barbara@example.com", "Barbara (legacy)", None, "legacy"),
            row("edsger@example.com", "Edsger (legacy)", None, "legacy"),
            // crm has no date (NULL is oldest), so shop's 2020 wins.
            row("grace@example.com", "Grace (shop)", Some("+1 3"), "shop"),
            // The same microsecond in crm and shop: crm comes first.
            row("ken@example.com", "Ken (crm)", None, "crm"),
        ]
    );
    assert_eq!(
        vault.one("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{s}' AND table_name LIKE 'credvault\\_%'"),
        Some("0".into()),
        "scratch tables are dropped"
    );
    assert_eq!(
        vault.one("SELECT tags::text FROM {s}.customers WHERE email = 'ada@example.com'"),
        Some(r#"["vip", "math"]"#.into())
    );
    let validate = p.run_ok(&["validate", "m.toml"]);
    assert!(validate.stdout.contains("passed"), "{}", validate.all());

    // Changes in every source; the sync rebuilds and counts them.
    crm.exec(
        "UPDATE {s}.customers SET name = 'Ada Lovelace', updated_at = '2024-09-01+00' WHERE id = 1",
    );
    shop.exec("DELETE FROM clients WHERE client_id = 12; INSERT INTO clients VALUES (15, 'donald@example.com', 'Donald (shop)', NULL, '2024-07-07 07:07:07')");
    p.write(
        "legacy/people.csv",
        "email,name,updated_at\nalan@example.com,Alan (legacy),2023-01-01T00:00:00Z\nbarbara@example.com,Barbara (legacy),2025-01-01T00:00:00Z\n",
    );
    let sync = p.run_ok(&["sync", "m.toml", "--log", "credvault=debug"]);
    assert!(sync.stdout.contains("customers"), "{}", sync.all());
    assert_eq!(
        sync.stderr
            .matches("discovering the source catalogue")
            .count(),
        3,
        "a consolidated sync reads each of its three sources' catalogues once:\n{}",
        sync.stderr
    );
    let status = p.run_ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let last = &status[0];
    // donald is new; ada changed and grace now comes from crm; edsger left.
    assert_eq!(last["inserted"], 1, "{status}");
    assert_eq!(last["updated"], 2, "{status}");
    assert_eq!(last["deleted"], 1, "{status}");
    let after = w.customers();
    assert!(after.contains(&row("ada@example.com", "Ada Lovelace", None, "crm")));
    assert!(after.contains(&row("grace@example.com", "Grace (crm)", None, "crm")));
    assert_eq!(after.len(), 6);

    // A tampered table fails validation, naming the key.
    vault.exec("UPDATE {s}.customers SET name = 'tampered' WHERE email = 'ken@example.com'");
    let tampered = p.run(&["validate", "m.toml"]);
    assert_eq!(tampered.code, 1, "{}", tampered.all());
    assert!(
        tampered.stdout.contains(
            "[FAIL] rows match: 1 differ from the winning source row (email=ken@example.com)"
        ),
        "{}",
        tampered.all()
    );
}

#[test]
fn source_priority_keeps_the_first_source_whatever_the_dates() {
    let w = setup();
    let p = &w.p;
    let rule = "rule = \"priority\"\npriority = [\"legacy\", \"shop\", \"crm\"]";
    p.write("m.toml", &migration(&w, rule, ""));
    p.run_ok(&["run", "m.toml"]);
    let rows = w.customers();
    assert!(rows.contains(&row("alan@example.com", "Alan (legacy)", None, "legacy")));
    assert!(rows.contains(&row("ada@example.com", "Ada (shop)", Some("+44 1"), "shop")));
    assert!(rows.contains(&row("ken@example.com", "Ken (shop)", Some("+1 4"), "shop")));
    assert_eq!(rows.len(), 6);

    // A second run takes a restore point of the consolidated table first;
    // rolling back to it brings the first run's rows back.
    p.write(
        "legacy/people.csv",
        &LEGACY.replace("Alan (legacy)", "Alan Turing"),
    );
    p.run_ok(&["run", "m.toml"]);
    assert!(
        w.customers()
            .contains(&row("alan@example.com", "Alan Turing", None, "legacy"))
    );
    let back = p.run_ok(&["rollback", "m.toml"]);
    assert!(back.stdout.contains("verified"), "{}", back.all());
    assert_eq!(w.customers(), rows);
}

#[test]
fn a_null_key_or_a_tie_is_refused_and_the_old_table_stays() {
    let w = setup();
    let p = &w.p;
    let rule = "rule = \"latest\"\nlatest_by = \"updated_at\"";
    p.write("m.toml", &migration(&w, rule, ""));
    p.run_ok(&["run", "m.toml"]);
    let before = w.customers();

    // Two rows of one source with the same key and date but other values.
    p.write(
        "legacy/people.csv",
        &format!("{LEGACY}edsger@example.com,Edsger Dijkstra,2019-09-09T09:09:09Z\n"),
    );
    let tie = p.run(&["run", "m.toml"]);
    assert_eq!(tie.code, 1, "{}", tie.all());
    assert!(
        tie.stdout.contains("[FAIL] ties: 1 keys have rows from one source that tie under the rule with different values (e.g. email=edsger@example.com from `legacy`)"),
        "{}",
        tie.all()
    );
    assert!(tie.stdout.contains("NOT swapped in"), "{}", tie.all());
    assert_eq!(
        w.customers(),
        before,
        "a failed validation swaps nothing in"
    );

    p.write(
        "legacy/people.csv",
        &format!("{LEGACY},Nobody,2019-01-01T00:00:00Z\n"),
    );
    let null_key = p.run(&["run", "m.toml"]);
    assert_eq!(null_key.code, 1, "{}", null_key.all());
    assert!(
        null_key
            .stderr
            .contains("1 source rows have a NULL in a key column (email)"),
        "{}",
        null_key.all()
    );
    assert_eq!(w.customers(), before);
}

#[test]
fn sources_that_disagree_on_a_type_are_refused_before_anything_moves() {
    let w = setup();
    let (p, vault) = (&w.p, &w.vault);
    let rule = "rule = \"latest\"\nlatest_by = \"updated_at\"";
    let text = migration(&w, rule, "").replace(
        "[tables.columns.modified]\nrename = \"updated_at\"\ntype = \"timestamptz\"",
        "[tables.columns.modified]\nrename = \"updated_at\"",
    );
    p.write("m.toml", &text);
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("column `updated_at`: `crm` gives timestamptz, `shop` gives timestamp; give both one type, e.g. `type = \"timestamptz\"` in [tables.columns.updated_at] of `shop`"),
        "{}",
        run.all()
    );
    assert_eq!(
        vault.one("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{s}' AND table_name NOT LIKE '\\_credvault%'"),
        Some("0".into()),
        "nothing was written"
    );
}

#[test]
fn consolidation_settings_are_checked_when_the_file_loads() {
    let p = project();
    p.write(
        "m.toml",
        r#"name = "bad"
[destination]
type = "sqlite"
path = "out/vault.db"
[connections.a]
type = "csv"
path = "a"
[[tables]]
connection = "a"
source = "people"
destination = "everyone"
[[tables]]
connection = "b"
source = "people"
destination = "everyone"
[[tables]]
source = "orphans"
[consolidate.everyone]
key = []
rule = "latest"
priority = ["a", "c"]
"#,
    );
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    for expected in [
        "tables[1] (people).connection: no [connections.b] is defined (known: a)",
        "tables[2] (orphans): there is no [source] to read it from",
        "consolidate.everyone.key: name the destination columns",
        "consolidate.everyone.latest_by: rule = \"latest\" needs the column",
        "consolidate.everyone.priority: `c` feeds no table into it",
        "consolidate.everyone.priority: `b` feeds it but is not listed",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?}:\n{}",
            run.all()
        );
    }
}

/// `[source]` and two CSV connections into `destination`, by priority.
fn csv_consolidation(destination: &str) -> String {
    format!(
        r#"name = "contacts"
[source]
type = "csv"
path = "a"
[connections.b]
type = "csv"
path = "b"
[connections.c]
type = "csv"
path = "c"
[destination]
{destination}
[[tables]]
source = "contacts"
[[tables]]
connection = "b"
source = "contacts"
[[tables]]
connection = "c"
source = "contacts"
[consolidate.contacts]
key = ["email"]
rule = "priority"
priority = ["c", "source", "b"]
"#
    )
}

fn contacts_csvs(p: &credvault_tests::Project) {
    // `Ann@x` and `ann@x` are two keys: keys compare byte for byte, even
    // where MariaDB's default collation would call them equal.
    p.write(
        "a/contacts.csv",
        "email,name\nAnn@x,Ann A\nann@x,ann a\nbob@x,Bob A\n",
    );
    p.write(
        "b/contacts.csv",
        "email,name\nbob@x,Bob B\ncy@x,Cy B\nann@x,ann b\n",
    );
    p.write("c/contacts.csv", "email,name\ncy@x,Cy C\n");
}

const CONTACTS: [(&str, &str); 4] = [
    ("Ann@x", "Ann A"),
    ("ann@x", "ann a"),
    ("bob@x", "Bob A"),
    ("cy@x", "Cy C"),
];

#[test]
fn keys_that_differ_only_in_case_stay_apart_in_mariadb_and_sqlite() {
    let maria = TestDb::new();
    for destination in [
        maria.endpoint(),
        "type = \"sqlite\"\npath = \"out/vault.db\"".to_string(),
    ] {
        let p = project();
        contacts_csvs(&p);
        p.write("m.toml", &csv_consolidation(&destination));
        let run = p.run_ok(&["run", "m.toml"]);
        assert!(run.stdout.contains("[pass] rows match"), "{}", run.all());
        let sql = "SELECT email, name FROM contacts";
        let mut rows = match destination.contains("sqlite") {
            true => p.query("out/vault.db", sql),
            false => maria.query(sql),
        };
        rows.sort();
        let want: Vec<Vec<Option<String>>> = CONTACTS
            .iter()
            .map(|(e, n)| vec![Some(e.to_string()), Some(n.to_string())])
            .collect();
        assert_eq!(rows, want, "{destination}");
    }
}

#[test]
fn a_dry_run_consolidates_into_scratch_tables_and_drops_them() {
    let p = project();
    contacts_csvs(&p);
    p.write(
        "m.toml",
        &csv_consolidation("type = \"sqlite\"\npath = \"out/vault.db\""),
    );
    let run = p.run_ok(&["run", "m.toml", "--dry-run"]);
    assert!(run.stdout.contains("[pass] rows match"), "{}", run.all());
    assert!(run.stdout.contains("dry run"), "{}", run.all());
    let left = p.query(
        "out/vault.db",
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_credvault%' ESCAPE '\\'",
    );
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_consolidation_killed_midway_leaves_the_old_table_and_reruns_exactly_once() {
    let p = project();
    let rows = 100_000;
    let mut big = String::from("email,name\n");
    for i in 0..rows {
        big.push_str(&format!("p{i}@x,person {i}\n"));
    }
    p.write("a/contacts.csv", &big);
    p.write("b/contacts.csv", &big.replace("person", "twin"));
    p.write("c/contacts.csv", "email,name\np7@x,seven from c\n");
    let text = csv_consolidation("type = \"sqlite\"\npath = \"out/vault.db\"")
        .replace("priority = [", "if_exists = \"replace\"\npriority = [");
    p.write("m.toml", &text);
    p.run_ok(&["run", "m.toml"]);
    p.write("a/contacts.csv", &big.replace("person", "renamed"));
    // Killed while the second source is half-way into its scratch table.
    super::resume::kill_midway(&p, &["run", "m.toml"], || {
        let sql = "SELECT json_extract(checkpoint, '$.rows') FROM _credvault_checkpoints WHERE migration = 'contacts#b'";
        let done = std::panic::catch_unwind(|| p.query("out/vault.db", sql)).unwrap_or_default();
        let done: u64 = done
            .first()
            .and_then(|r| r[0].as_deref()?.parse().ok())
            .unwrap_or(0);
        done > 0 && done < rows as u64
    });
    let during = p.query(
        "out/vault.db",
        "SELECT count(*), sum(name LIKE 'person%') FROM contacts",
    );
    assert_eq!(
        during[0],
        vec![Some(rows.to_string()), Some((rows - 1).to_string())],
        "the old table is whole until the new copy is swapped in"
    );
    let again = p.run_ok(&["run", "m.toml"]);
    assert!(
        again.stdout.contains("[pass] rows match"),
        "{}",
        again.all()
    );
    let after = p.query(
        "out/vault.db",
        "SELECT count(*), count(DISTINCT email), sum(name LIKE 'renamed%') FROM contacts",
    );
    assert_eq!(
        after[0],
        vec![
            Some(rows.to_string()),
            Some(rows.to_string()),
            Some((rows - 1).to_string())
        ]
    );
}

#[test]
fn a_consolidation_never_rebuilds_a_table_it_did_not_create() {
    let w = setup();
    let (p, vault) = (&w.p, &w.vault);
    vault.exec(
        "CREATE TABLE {s}.customers (email text PRIMARY KEY, name text, phone text, origin text);
         INSERT INTO {s}.customers VALUES ('mine@example.com', 'Mine', NULL, 'by hand')",
    );
    let rule = "rule = \"priority\"\npriority = [\"crm\", \"shop\", \"legacy\"]";
    let failing =
        migration(&w, rule, "").replace("if_exists = \"replace\"", "if_exists = \"fail\"");
    p.write("m.toml", &failing);
    for (command, says) in [
        ("run", "it exists with 1 rows"),
        ("sync", "was not created by migration `customers-360`"),
    ] {
        let refused = p.run(&[command, "m.toml"]);
        assert_eq!(refused.code, 1, "{}", refused.all());
        assert!(refused.all().contains(says), "{}", refused.all());
        assert_eq!(
            w.customers(),
            vec![row("mine@example.com", "Mine", None, "by hand")],
            "`{command}` left the user's table alone"
        );
    }
    // Asked to replace it, a run does (a restore point keeps it), and from
    // then on the table is the migration's: its syncs rebuild it.
    p.write("m.toml", &migration(&w, rule, ""));
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(w.customers().len(), 6);
    p.run_ok(&["sync", "m.toml"]);
}
