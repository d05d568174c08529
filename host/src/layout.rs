//! Checks that the crate's top-level modules depend on each other one way
//! only: it reads every `crate::` path in `src/` and fails on a cycle, or on
//! a module naming one in a layer above its own, naming the files.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Module → module it names → one file that names it.
    type Graph = BTreeMap<String, BTreeMap<String, String>>;

    #[test]
    fn top_level_modules_form_no_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let graph = read_graph(&src);
        assert!(graph.len() > 5, "found the modules of {}", src.display());
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "the top-level modules of host/src import each other in a cycle; move the code behind one of these edges so dependencies run one way (model ← config ← capabilities ← runtime ← drivers ← engine ← jobs ← app ← cli/ui):\n{}",
                describe(&graph, &cycle)
            );
        }
    }

    /// The layers, lowest first: a module may name only modules of the
    /// layers before its own.
    const LAYERS: &[&[&str]] = &[
        &["model"],
        &["config"],
        &["capabilities"],
        &["runtime"],
        &["state"],
        &["drivers"],
        &["engine"],
        &["jobs"],
        &["app"],
        &["ui"],
        &["cli"],
    ];

    #[test]
    fn each_module_names_only_the_layers_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
        let mut wrong = Vec::new();
        for (from, edges) in read_graph(&src) {
            let Some(own) = layer(&from) else {
                wrong.push(format!(
                    "  `{from}` is in no layer: add it to LAYERS in src/layout.rs"
                ));
                continue;
            };
            for (to, file) in edges {
                if layer(&to).is_none_or(|l| l >= own) {
                    wrong.push(format!("  {from} → {to} ({file})"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "these imports point up the layers (model ← config ← capabilities ← runtime ← state ← drivers ← engine ← jobs ← app ← ui ← cli); move the code so they point down:\n{}",
            wrong.join("\n")
        );
    }

    /// The files outside `drivers/` allowed to name a database: the
    /// migration file's endpoint kinds, and the state store (SQLite).
    const NAMING_DATABASES: &[&str] = &["config/endpoint.rs", "state/mod.rs"];

    /// What naming a database in code looks like: an endpoint variant (or
    /// all of them), a driver's folder or its types, one of sqlx's database
    /// modules, or a database's name in a message.
    const DATABASE_NAMES: &[&str] = &[
        "Endpoint::Postgres",
        "Endpoint::Mysql",
        "Endpoint::Sqlite",
        "Endpoint::Csv",
        "Endpoint::Plugin",
        "Endpoint::*",
        "drivers::postgres",
        "drivers::mysql",
        "drivers::sqlite",
        "drivers::csv",
        "drivers::plugin",
        "PgChanges",
        "PgSink",
        "PgStore",
        "MySqlSink",
        "SqliteSink",
        "sqlx::postgres",
        "sqlx::mysql",
        "sqlx::sqlite",
        "sqlx::Pg",
        "sqlx::Postgres",
        "sqlx::MySql",
        "sqlx::Sqlite",
        "PostgreSQL",
        "MariaDB",
        "MySQL",
        "SQLite",
    ];

    #[test]
    fn outside_drivers_only_the_endpoint_kinds_and_the_state_store_name_a_database() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut naming = Vec::new();
        for file in rust_files(&src) {
            let rel = file.strip_prefix(&src).expect("under src");
            let shown = rel.display().to_string();
            if rel.starts_with("drivers") || shown == "layout.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source");
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            let named: Vec<&str> = DATABASE_NAMES
                .iter()
                .copied()
                .filter(|n| code.iter().any(|l| l.contains(n)))
                .collect();
            if !named.is_empty() && !NAMING_DATABASES.contains(&shown.as_str()) {
                naming.push(format!("  {shown}: {}", named.join(", ")));
            }
        }
        assert!(
            naming.is_empty(),
            "these files outside host/src/drivers name a database; ask the registry (drivers::registry::driver(endpoint)) or a method of Endpoint instead:\n{}",
            naming.join("\n")
        );
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let mut graph = Graph::new();
        let mut edge = |a: &str, b: &str| {
            let to = graph.entry(a.to_string()).or_default();
            to.insert(b.to_string(), format!("{a}/mod.rs"));
        };
        edge("model", "config");
        edge("config", "drivers");
        edge("drivers", "model");
        edge("jobs", "drivers");
        let cycle = find_cycle(&graph).expect("a cycle");
        let text = describe(&graph, &cycle);
        assert!(text.contains("config → drivers (config/mod.rs)"), "{text}");
        assert!(!text.contains("jobs"), "{text}");
        graph.get_mut("drivers").unwrap().clear();
        assert_eq!(find_cycle(&graph), None);
    }

    #[test]
    fn grouped_and_nested_imports_are_read() {
        let text = "use crate::{config::Migration, model::{value::Row, text}};\nfn f() { crate::jobs::run(); }\n// crate::app is only mentioned\n";
        let named: BTreeSet<String> = named_modules(text).into_iter().collect();
        let expected = ["config", "jobs", "model"].map(String::from);
        assert_eq!(named, BTreeSet::from(expected));
    }

    fn read_graph(src: &Path) -> Graph {
        let mut graph = Graph::new();
        for file in rust_files(src) {
            let rel = file.strip_prefix(src).expect("under src");
            let Some(top) = top_module(rel) else { continue };
            if top == "layout" {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source");
            let edges = graph.entry(top.clone()).or_default();
            for named in named_modules(&text) {
                if named != top {
                    let shown = rel.display().to_string();
                    edges.entry(named).or_insert(shown);
                }
            }
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for edges in graph.values_mut() {
            edges.retain(|to, _| modules.contains(to));
        }
        graph
    }

    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("readable folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }

    /// `drivers/postgres/mod.rs` → `drivers`; the crate roots belong to none.
    fn top_module(rel: &Path) -> Option<String> {
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main")).then(|| name.to_string())
    }

    /// The top-level modules a file names in `crate::` paths, including
    /// `use crate::{a::x, b}` groups; lines that are comments are skipped.
    fn named_modules(text: &str) -> Vec<String> {
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            match rest.strip_prefix('{') {
                Some(group) => named.extend(group_heads(group)),
                None => named.push(ident(rest)),
            }
        }
        named.retain(|n| !n.is_empty());
        named
    }

    /// The first path segment of each item of a `{…}` group.
    fn group_heads(group: &str) -> Vec<String> {
        let mut heads = vec![ident(group)];
        let mut depth = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => heads.push(ident(group[i + 1..].trim_start())),
                _ => {}
            }
        }
        heads
    }

    fn ident(text: &str) -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    }

    /// One cycle, as the modules along it, if there is any.
    fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
        let mut done = BTreeSet::new();
        for start in graph.keys() {
            let mut path = Vec::new();
            if let Some(cycle) = visit(graph, start, &mut path, &mut done) {
                return Some(cycle);
            }
        }
        None
    }

    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }

    fn describe(graph: &Graph, cycle: &[String]) -> String {
        let mut lines = Vec::new();
        for (i, from) in cycle.iter().enumerate() {
            let to = &cycle[(i + 1) % cycle.len()];
            let file = &graph[from][to];
            lines.push(format!("  {from} → {to} ({file})"));
        }
        lines.join("\n")
    }
}
