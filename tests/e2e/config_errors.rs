//! Bad migration files: each error points at the key and says what to do.

use super::project;

fn check_error(toml_text: &str) -> String {
    let p = project();
    p.write("m.toml", toml_text);
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    run.stderr
}

const BASE: &str = "name = \"x\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n";

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let err = check_error(&format!(
        "{BASE}[settings]\nbatchsize = 10\n[[tables]]\nsource = \"t\"\n"
    ));
    assert!(err.contains("unknown field `batchsize`"), "{err}");
    assert!(err.contains("line 9"), "{err}");
}

#[test]
fn an_unknown_endpoint_type_lists_the_known_ones() {
    let err = check_error(
        "name = \"x\"\n[source]\ntype = \"oracle\"\n[destination]\ntype = \"sqlite\"\npath = \"o\"\n[[tables]]\nsource = \"t\"\n",
    );
    assert!(
        err.contains("unknown variant `oracle`, expected one of `csv`, `sqlite`, `postgres`, `mariadb`, `mysql`"),
        "{err}"
    );
}

#[test]
fn semantic_problems_name_their_keys() {
    let err = check_error(&format!(
        "{BASE}[[tables]]\nsource = \"t\"\n[tables.columns.a]\ntype = \"money\"\n[tables.columns.b]\nmap = {{ x = 1 }}\nunmapped = \"default\"\n"
    ));
    assert!(
        err.contains("tables[0] (t).columns.a.type: unknown type `money`"),
        "{err}"
    );
    assert!(
        err.contains(
            "tables[0] (t).columns.b.default: `unmapped = \"default\"` needs a `default` value"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_file_says_so() {
    let p = project();
    let run = p.run(&["run", "nope.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read migration file nope.toml"),
        "{}",
        run.all()
    );
}
