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

#[test]
fn plugin_limits_out_of_range_name_the_key_and_the_range() {
    let err = check_error(&format!(
        "{BASE}[limits]\ntimeout_ms = 0\nmemory_mb = 4294967295\nfuel = 9223372036854775807\n[[tables]]\nsource = \"t\"\n[[tables.transforms]]\nplugin = \"x.wasm\"\nlimits = {{ table_seconds = 60 }}\n"
    ));
    for expected in [
        "limits.timeout_ms: must be between 1 and 3600000 (ms per call, one hour at most), got 0",
        "limits.memory_mb: must be between 1 and 4096 (MiB per instance; a wasm32 memory cannot pass 4 GiB), got 4294967295",
        "limits.fuel: must be between 1 and 1000000000000000 (instructions per call), got 9223372036854775807",
        "tables[0] (t).transforms[0].limits.table_seconds: only a source plugin reads tables",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

#[test]
fn a_fuel_limit_of_u64_max_is_refused_with_its_range() {
    let err = check_error(&format!(
        "{BASE}[limits]\nfuel = 18446744073709551615\n[[tables]]\nsource = \"t\"\n"
    ));
    assert!(
        err.contains("limits.fuel: must be between 1 and 1000000000000000 (instructions per call), got 18446744073709551615"),
        "{err}"
    );
}

#[test]
fn a_table_budget_of_zero_is_refused() {
    let err = check_error(
        "name = \"x\"\n[source]\ntype = \"plugin\"\nplugin = \"s.wasm\"\nlimits = { table_seconds = 0 }\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[[tables]]\nsource = \"t\"\n",
    );
    assert!(
        err.contains("source.limits.table_seconds: must be between 1 and 604800 (seconds per table, one week at most; leave it out for no budget), got 0"),
        "{err}"
    );
}
